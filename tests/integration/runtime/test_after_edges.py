"""`after:` is a real dependency: a step never runs after a predecessor whose latest verdict
failed — run alone (`loopline step`, what DVC stages, Airflow pods and tasks call). DVC aimed
at a later stage: tests/integration/backends/test_dvc.py."""

from __future__ import annotations

import json
from pathlib import Path

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
