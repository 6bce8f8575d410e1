"""The pull request's verdict: quality against the base on the same sample, latency against
the champion; the spec's status and the job's exit code follow what was judged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loopline.ci import variants
from loopline.ci.base_run import BaseRun, judge
from loopline.ci.outcome import CiOutcome, SpecOutcome
from loopline.pipeline.load import load_pipeline
from tests.support import REPO

WINDOW = {"rows": 600, "column": "time_hour", "from": "2013-06-01T00:00:00",
          "to": "2013-06-30T23:00:00"}


@pytest.fixture
def head(tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(REPO / "loopline/scaffold_data", tmp_path, dirs_exist_ok=True)
    return variants.for_pull_request(load_pipeline(tmp_path / "pipelines/train.yaml"))


def verdict(auc: float, champion_auc: float) -> dict:
    drop = champion_auc - auc
    return {"passed": drop <= 0.02, "metrics": {"roc_auc": auc}, "judged_on": WINDOW,
            "rows": 600, "checks": [
                {"metric": "roc_auc", "check": "min", "value": auc, "threshold": 0.55,
                 "passed": auc >= 0.55, "detail": f"roc_auc {auc} >= min 0.55"},
                {"metric": "roc_auc", "check": "max_drop_vs_champion", "value": drop,
                 "threshold": 0.02, "passed": drop <= 0.02, "challenger": auc,
                 "champion": champion_auc,
                 "detail": f"roc_auc {auc} vs champion {champion_auc}: worse by {drop:.3f}"}],
            "champion": {"version": "3", "metrics": {"roc_auc": champion_auc}}}


def outcome_of(head_verdict: dict) -> SpecOutcome:
    outcome = SpecOutcome("pipelines/train.yaml", "train", run={"steps": {}},
                          verdict=head_verdict)
    outcome.failures = [f"gate: {c['detail']}" for c in head_verdict["checks"]
                        if not c["passed"]]
    outcome.settle()
    return outcome


def test_behind_the_all_rows_champion_but_level_with_the_base_passes(head) -> None:  # type: ignore[no-untyped-def]
    outcome = outcome_of(verdict(0.64, 0.70))  # 0.06 behind the champion: the sample's cost
    assert outcome.status == "failed"
    judge(outcome, head, BaseRun("abc1234", verdict(0.641, 0.70)))
    assert outcome.failures == [] and outcome.status == "passed"
    [check] = outcome.base_checks
    assert check["against"] == "base" and "vs base 0.641" in check["detail"]
    assert CiOutcome("pr", {}, [outcome]).exit_code() == 0


def test_worse_than_the_base_fails_and_says_so(head) -> None:  # type: ignore[no-untyped-def]
    outcome = outcome_of(verdict(0.60, 0.61))  # within 0.02 of the champion
    judge(outcome, head, BaseRun("abc1234", verdict(0.65, 0.61)))
    assert outcome.status == "failed" and outcome.failures[0].startswith("gate: roc_auc 0.6")
    assert "vs base 0.65: worse by 0.05" in outcome.failures[0]


def test_a_base_judged_on_other_rows_is_not_compared(head) -> None:  # type: ignore[no-untyped-def]
    outcome = outcome_of(verdict(0.64, 0.70))
    other = verdict(0.66, 0.70)
    other["judged_on"] = dict(WINDOW, rows=580)
    judge(outcome, head, BaseRun("abc1234", other))
    assert outcome.status == "failed" and not outcome.base_checks  # the champion decides
    # Never run here, so no ingested file to compare: the judged windows differ, and it says so.
    assert outcome.base.note.startswith("no ingest.table output tells")


def test_report_only_softens_verdicts_never_crashes() -> None:
    soft = SpecOutcome("a.yaml", "a", run={}, failures=["gate: x"], report_only=True)
    crash = SpecOutcome("b.yaml", "b", run={}, failures=["step train failed: boom"],
                        report_only=True, crashed=True)
    assert CiOutcome("pr", {}, [soft]).exit_code() == 0
    assert CiOutcome("pr", {}, [soft]).report_only
    assert CiOutcome("pr", {}, [soft, crash]).exit_code() == 1
