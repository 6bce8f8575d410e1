"""`loopline feedback` and `loopline monitor` on a served project: labels joined by request
id and by entity keys (a time column among them), the counts printed, the live checks run
from the command line as cron would, and every bad input refused with one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from loopline.integrations import prediction_labels, prediction_log
from tests.support import run_cli
from tests.support.live_monitoring import (
    copy_project,
    log_folder,
    log_minute,
    sample,
    trained_project,
)

pytestmark = pytest.mark.slow
KEYS = ["carrier", "origin", "dest", "time_hour", "sched_dep_time"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("feedback") / "project")


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    return copy_project(trained, tmp_path / "project")


def _spec(project: Path) -> str:
    return str(project / "pipelines" / "train.yaml")


def _late(project: Path) -> pd.Series:
    return sample(project)["arr_delay"] > 15


def _logged(project: Path) -> pd.DataFrame:
    return prediction_log.read(log_folder(project))


def _joined(project: Path) -> pd.DataFrame:
    labels = prediction_labels.read(prediction_labels.labels_folder(
        str(project / "artifacts"), "my-model"))
    return prediction_labels.join(_logged(project), labels)


def test_labels_join_by_request_id(project: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    ids = log_minute(project, start) + log_minute(project, start + timedelta(minutes=1),
                                                  offset=60)
    late = _late(project).iloc[:120].to_numpy()
    labels = pd.DataFrame({"request_id": ids[:100] + [f"unknown-{i}" for i in range(10)]
                           + ids[100:105],
                           "late": [*late[:100], *[True] * 10, *[None] * 5]})
    labels.to_csv(project / "labels.csv", index=False)
    code, out, err = run_cli("feedback", _spec(project), str(project / "labels.csv"),
                             "--label", "late")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("110 labels kept (5 without a label or key skipped): ")
    assert lines[1] == ("100 matched logged predictions of my-model by request_id (100 "
                        "predictions labelled); 10 matched none yet (kept: their predictions "
                        "may still be buffered, they join later)")
    kept = Path(lines[0].rsplit(": ", 1)[1])
    assert kept.parent == project / "artifacts" / "predictions" / "my-model" / "labels"
    assert not list(kept.parent.glob(".*"))  # written whole, nothing left in flight
    joined = _joined(project).set_index("request_id")
    assert joined.loc[ids[:100], "label"].tolist() == late[:100].tolist()
    assert joined.loc[ids[100:], "label"].isna().all()
    assert len(_logged(project)) == 120  # the labels never mix into the log


def test_labels_join_by_entity_keys_and_a_correction_wins(project: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    log_minute(project, start)
    flights = sample(project).iloc[:60].copy()
    flights["late"] = _late(project).iloc[:60]
    # A labels feed keyed like the airline's: the departure hour as ISO text, not a timestamp.
    feed = flights[[*KEYS, "late"]].assign(time_hour=flights["time_hour"].dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"))
    feed.iloc[:40].to_parquet(project / "labels.parquet")
    code, out, err = run_cli("feedback", _spec(project), str(project / "labels.parquet"),
                             "--label", "late", "--by", ",".join(KEYS), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["labels"], result["kept"], result["matched"], result["by"]) == \
        (40, 40, 40, KEYS)
    assert result["labelled"] >= 40  # a flight predicted twice gets its label twice
    joined = _joined(project)
    labelled = joined[joined["label"].notna()]
    assert len(labelled) == result["labelled"]
    truth = labelled[KEYS].merge(flights[[*KEYS, "late"]].drop_duplicates(KEYS), on=KEYS,
                                 how="left")
    assert labelled["label"].tolist() == truth["late"].tolist()
    assert joined["label"].iloc[40:].isna().all()  # flights without a label stay unlabelled
    # A later file corrects an earlier label of the same flight.
    fixed = feed.iloc[:1].assign(late=not bool(feed["late"].iloc[0]))
    fixed.to_csv(project / "fix.csv", index=False)
    code, out, err = run_cli("feedback", _spec(project), str(project / "fix.csv"), "--label",
                             "late", "--by", ",".join(KEYS))
    assert code == 0, err
    assert out.startswith("1 labels kept")
    first = _joined(project).iloc[0]
    assert first["label"] == (not bool(feed["late"].iloc[0]))


def test_bad_feedback_inputs_are_one_line_each(project: Path) -> None:
    log_minute(project, datetime.now(UTC) - timedelta(minutes=2))
    pd.DataFrame({"request_id": ["a"], "late": [True], "tailnum": ["N1"]}).to_csv(
        project / "labels.csv", index=False)
    labels = str(project / "labels.csv")
    cases = {
        ("--label", "arrived"): "labels.csv has no column arrived (columns: request_id, late, "
                                "tailnum)",
        ("--label", "late", "--by", "tailnum"): "the prediction log under "
                                                f"{log_folder(project)} has no column tailnum",
        ("--label", "late", "--by", " , "): "--by names no column",
    }
    for extra, message in cases.items():
        code, out, err = run_cli("feedback", _spec(project), labels, *extra)
        assert (code, out) == (2, ""), (extra, err)
        assert err.startswith("error: ") and message in err, (extra, err)
        assert len(err.strip().splitlines()) == 1
    (project / "labels.txt").write_text("x")
    code, _, err = run_cli("feedback", _spec(project), str(project / "labels.txt"),
                           "--label", "late")
    assert code == 2 and "labels come as .csv or .parquet" in err
    code, _, err = run_cli("feedback", str(project / "pipelines" / "drift.yaml"), labels,
                           "--label", "late")
    assert code == 0, err  # a spec of the same model may take feedback too


def test_monitor_from_the_command_line_holds_then_would_retrain(project: Path) -> None:
    """Cron runs `loopline monitor` three times; the metric stays bad, so the third run flips
    it and (dry run) names the retraining the drift spec beside it would start."""
    now = datetime.now(UTC)
    start = now - timedelta(seconds=59)
    late = _late(project).iloc[:60].to_numpy()
    from tests.support.live_monitoring import MODEL

    ids = log_minute(project, start, predictions=(~late) * 0.8 + 0.1)  # ranked backwards
    prediction_labels.write(prediction_labels.labels_folder(str(project / "artifacts"), MODEL),
                            pd.DataFrame({"request_id": ids, "label": late}))
    outputs = []
    for _ in range(3):
        code, out, err = run_cli("monitor", _spec(project), "--window", "5m", "--dry-run")
        assert code == 0, err
        outputs.append(out)
    first = outputs[0].splitlines()
    assert first[0].startswith("my-model v1 (champion) at ")
    assert first[0].endswith(": 60 requests in the last 5m, 60 labelled")
    table = "\n".join(first)
    assert "  error_rate" in table and "0.00%" in table
    assert "metric roc_auc" in table and "breached   healthy (1/3 to flip)" in table
    assert "metric: healthy -> breached after 3 evaluations" in outputs[2]
    assert "would retrain (dry run): loopline run pipelines/train.yaml" in outputs[2]
    code, out, err = run_cli("monitor", _spec(project), "--window", "5m", "--json",
                             "--dry-run")
    result = json.loads(out)
    assert result["checks"]["metric"]["state"] == "breached"
    assert result["retrain"]["dry_run"] is True  # a dry run recorded nothing: asked again
    code, _, err = run_cli("monitor", _spec(project), "--window", "soon")
    assert code == 2 and "--window: 'soon' is not a duration" in err
    code, _, err = run_cli("monitor", str(project / "pipelines" / "drift.yaml"))
    assert code == 2 and "has no `serve:` block" in err
