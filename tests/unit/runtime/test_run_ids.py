"""An orchestrator's run has one Loopline run id, whether its step runs in-process or in a pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.pipeline.load import load_pipeline
from loopline.runtime.context import ORCHESTRATOR_RUN_ENV, Run, orchestrator_run_id

AIRFLOW_RUN = "manual__2026-11-25T14:43:36.123456+00:00"


def test_native_run_ids_become_safe_loopline_run_ids() -> None:
    assert orchestrator_run_id("airflow", AIRFLOW_RUN) == \
        "airflow-manual__2026-11-25T14_43_36.123456_00_00"
    assert orchestrator_run_id("kfp", "3f2a-11") == "kfp-3f2a-11"


def test_a_pod_and_an_in_process_task_record_the_same_run(
        small_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_pipeline(small_project / "pipelines" / "train.yaml")
    in_process = Run.for_orchestrator(loaded, "airflow", AIRFLOW_RUN)
    monkeypatch.setenv(ORCHESTRATOR_RUN_ENV, AIRFLOW_RUN)  # what the pod operator renders
    in_pod = Run.from_env(loaded, "airflow")
    assert in_pod.run_id == in_process.run_id
    assert in_pod.orchestrator_run == in_process.orchestrator_run == AIRFLOW_RUN
    monkeypatch.delenv(ORCHESTRATOR_RUN_ENV)
    monkeypatch.setenv("LOOPLINE_RUN_ID", "shared-by-dvc-stages")
    assert Run.from_env(loaded, "dvc").run_id == "shared-by-dvc-stages"
