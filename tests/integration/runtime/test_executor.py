"""Runtime behaviour: retries, timeouts, remote stores, W&B offline and the step command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_cli, run_json


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pipelines").mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "pipelines" / "p.yaml"
    spec.write_text("name: p\n" + body)
    return spec


def test_crash_is_retried_per_spec_with_its_error_logged(tmp_path: Path) -> None:
    spec = _project(tmp_path, """
steps:
  flaky:
    component: tests.support.slow_component:FLAKY
    params: {fail_times: 1}
    retries: 1
    retry_delay_s: 0
""")
    code, out, err = run_cli("run", str(spec), "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary["steps"]["flaky"]["status"] == "succeeded"
    assert summary["steps"]["flaky"]["metrics"] == {"attempts": 2}
    assert "ConnectionError: flaky on attempt 1" in err  # the failed attempt's log is shown
    assert "(attempt 2)" in err


def test_retries_exhausted_and_verdicts_not_retried(tmp_path: Path) -> None:
    spec = _project(tmp_path, """
steps:
  flaky:
    component: tests.support.slow_component:FLAKY
    params: {fail_times: 5}
    retries: 2
    retry_delay_s: 0
""")
    summary = run_json(spec)
    assert summary["status"] == "failed"
    assert summary["steps"]["flaky"]["error"] == "ConnectionError: flaky on attempt 3"
    (tmp_path / "attempts").unlink()
    spec.write_text(spec.read_text().replace("fail_times: 5", "verdict: true"))
    summary = run_json(spec)
    assert summary["steps"]["flaky"]["error"] == "the data says no"
    assert (tmp_path / "attempts").read_text() == "1"


def test_timeout_stops_a_hung_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_TEST_HANG", "30")
    spec = _project(tmp_path, """
steps:
  slow:
    component: tests.support.slow_component:COMPONENT
    timeout_s: 1
""")
    summary = run_json(spec)
    assert summary["steps"]["slow"]["status"] == "failed"
    assert summary["steps"]["slow"]["error"] == "StepTimeout: timed out after 1s"
    assert summary["steps"]["slow"]["duration_s"] < 10


@pytest.mark.slow
def test_fsspec_artifact_root(small_project: Path) -> None:
    """A real fsspec filesystem (in-memory) stands in for s3:// or gs://."""
    import fsspec

    spec = small_project / "pipelines" / "train.yaml"
    spec.write_text("artifacts: {root: 'memory://loopline-test/artifacts'}\n" + spec.read_text())
    first = run_json(spec)
    assert first["status"] == "succeeded"
    assert first["steps"]["train"]["outputs"]["model"] == \
        "memory://loopline-test/artifacts/train/train/model.joblib"
    fs = fsspec.filesystem("memory")
    assert fs.exists("/loopline-test/artifacts/train/train/_loopline.json")
    assert not (small_project / "artifacts").exists()
    second = run_json(spec)
    assert {s["status"] for s in second["steps"].values()} == {"cached"}


@pytest.mark.slow
def test_wandb_offline_when_enabled_without_key(small_project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.chdir(small_project)
    spec = small_project / "pipelines" / "train.yaml"
    spec.write_text("tracking: {wandb: {enabled: true, project: loopline-test}}\n"
                    + spec.read_text())
    assert run_json(spec)["status"] == "succeeded"
    runs = list((small_project / "wandb").glob("offline-run-*"))
    assert len(runs) == 1


@pytest.mark.slow
def test_step_command_runs_one_step_and_reuses_it(small_project: Path) -> None:
    spec = str(small_project / "pipelines" / "train.yaml")
    code, out, err = run_cli("step", spec, "features", "--json")
    assert code == 1 and "needs ingest.train" in json.loads(out)["error"]
    code, out, _ = run_cli("step", spec, "ingest", "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    code, out, _ = run_cli("step", spec, "ingest", "--json")
    assert json.loads(out)["status"] == "cached"
    code, _, err = run_cli("step", spec, "nope")
    assert code == 2 and "no step 'nope'" in err


@pytest.mark.slow
def test_step_takes_run_params_from_the_environment(small_project: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What a Kubernetes pod receives: the run's params as LOOPLINE_PARAMS_JSON."""
    spec = str(small_project / "pipelines" / "train.yaml")
    monkeypatch.setenv("LOOPLINE_PARAMS_JSON", json.dumps({"data": {"eval_fraction": 0.5}}))
    code, out, _ = run_cli("step", spec, "ingest", "--json")
    assert code == 0
    metrics = json.loads(out)["metrics"]
    assert abs(metrics["rows_eval"] - metrics["rows_train"]) < 150  # a 50/50 split
