"""`after:` is a real dependency: a step never runs after a predecessor whose latest verdict
failed — run alone (`loopline step`, what DVC stages, Airflow pods and tasks call) or by DVC
targeting a later stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.backends.dvc import DvcCompiler
from loopline.pipeline.load import load_pipeline
from tests.support import run_cli

PASSING = "expect_column_values_to_be_in_set: {column: origin, value_set: [EWR, JFK, LGA]}"
FAILING = "expect_column_values_to_be_in_set: {column: origin, value_set: [EWR, JFK]}"


def _step(spec: Path, step: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out, err = run_cli("step", str(spec), step, "--json")
    return code, json.loads(out) if out.strip() else {"stderr": err}


def test_a_step_refuses_to_run_after_a_failed_validation(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    assert PASSING in spec.read_text()
    assert _step(spec, "ingest")[0] == 0
    # Never validated: features (after: [validate]) refuses instead of running on raw data.
    code, outcome = _step(spec, "features")
    assert code == 1 and "runs after 'validate'" in outcome["error"], outcome
    assert _step(spec, "validate")[0] == 0
    assert _step(spec, "features")[0] == 0
    # The data (here: the suite) changes and validation now fails: its old pass no longer
    # counts, and features refuses again instead of reusing or recomputing on bad data.
    spec.write_text(spec.read_text().replace(PASSING, FAILING))
    code, outcome = _step(spec, "validate")
    assert code == 1 and "expect_column_values_to_be_in_set(origin)" in outcome["error"]
    code, outcome = _step(spec, "features")
    assert code == 1 and "runs after 'validate'" in outcome["error"], outcome
    assert not (small_project / "artifacts/train/validate/_loopline.json").exists()


@pytest.mark.slow
def test_dvc_repro_of_a_later_stage_runs_and_obeys_validation(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text().replace(PASSING, FAILING))
    DvcCompiler().compile(load_pipeline(spec), small_project / "dvc.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=small_project, capture_output=True, text=True, env=env,
                              timeout=600)

    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
                    ["dvc", "init", "-q"]):
        assert sh(*command).returncode == 0
    result = sh("dvc", "repro", "train")  # targets train: validate must run, and it fails
    assert result.returncode != 0
    assert "Running stage 'validate'" in result.stdout, result.stdout
    assert "Running stage 'features'" not in result.stdout
    assert not (small_project / "artifacts/train/train").exists()
