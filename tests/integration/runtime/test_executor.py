"""Runtime behaviour: retries, timeouts, remote stores, W&B offline and the step command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import run_cli, run_json, subprocess_cli
from tests.support.promise_wandb import read_offline_run


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
    summary = run_json(spec)
    assert summary["status"] == "succeeded"
    (folder,) = (small_project / "wandb").glob("offline-run-*")
    run = read_offline_run(folder)
    assert run.name == summary["run_id"]
    assert run.config["loopline.run_id"] == summary["run_id"]
    # Every metric each step reported is in the offline run, under `<step>/<metric>`.
    reported = {f"{step}/{name}": value for step, outcome in summary["steps"].items()
                for name, value in outcome.get("metrics", {}).items()}
    assert {"ingest/rows_in", "train/train_rows", "evaluate/roc_auc"} <= set(reported)
    assert run.logged["ingest/rows_in"] == 3000
    assert run.logged == pytest.approx(reported)


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


@pytest.mark.parametrize(("orchestrator", "attempts", "code"),
                         [("dvc", "2", 0), ("airflow", "1", 1), ("kfp", "1", 1)])
def test_step_retries_only_where_the_orchestrator_does_not(
        tmp_path: Path, orchestrator: str, attempts: str, code: int) -> None:
    """Airflow and KFP retry failed tasks themselves: a pod's `loopline step` must not retry
    too, or attempts multiply (Airflow's 3 tries x Loopline's 3 attempts = 9 runs)."""
    spec = tmp_path / "pipelines" / "p.yaml"
    spec.parent.mkdir()
    spec.write_text("name: p\nsteps:\n  flaky:\n    component: tests.support.slow_component:FLAKY\n"
                    "    params: {fail_times: 1}\n    retries: 1\n    retry_delay_s: 0\n")
    got, _, _ = run_cli("step", str(spec), "flaky", "--orchestrator", orchestrator)
    assert (got, (tmp_path / "attempts").read_text()) == (code, attempts)


def _manifest(project: Path, step: str, pipeline: str = "p") -> dict[str, Any]:
    return dict(json.loads((project / "artifacts" / pipeline / step / "_loopline.json")
                           .read_text()))


def _statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {name: step["status"] for name, step in summary["steps"].items()}


HELLO = """\
from loopline.components.contract import Component, ComponentParams, Output, StepResult
from mycomp.helper import greeting


class Params(ComponentParams):
    pass


def run(ctx, params):
    ctx.output_path("text").write_text(greeting() + " v1\\n")
    return StepResult()


COMPONENT = Component(name="mycomp.hello", version="1", description="a project's own",
                      params=Params, run=run, outputs={"text": Output("hello.txt", "dataset")})
"""
HELPER = 'def greeting() -> str:\n    return "hello"\n'


def test_editing_a_components_code_or_its_helper_reruns_it(tmp_path: Path) -> None:
    """The declared version stays "1" throughout: only the source changes. Each run is its own
    process, as each `loopline run` is."""
    spec = _project(tmp_path, "steps:\n  hello:\n    component: mycomp.step:COMPONENT\n")
    package = tmp_path / "mycomp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "step.py").write_text(HELLO)
    (package / "helper.py").write_text(HELPER)
    output = tmp_path / "artifacts" / "p" / "hello" / "hello.txt"

    def run() -> tuple[str, str, str]:
        done = subprocess_cli("run", str(spec), "--json", cwd=tmp_path,
                              env={"PYTHONDONTWRITEBYTECODE": "1"})  # same-second edits
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)["steps"]["hello"]["status"]
        return status, _manifest(tmp_path, "hello")["key"], output.read_text()

    status, original, text = run()
    assert (status, text) == ("succeeded", "hello v1\n")
    assert run() == ("cached", original, "hello v1\n")

    (package / "step.py").write_text(HELLO.replace(" v1", " v2"))
    status, edited, text = run()
    assert (status, text) == ("succeeded", "hello v2\n") and edited != original

    (package / "helper.py").write_text(HELPER.replace('"hello"', '"hi"'))
    status, helper_edited, text = run()
    assert (status, text) == ("succeeded", "hi v2\n")
    assert helper_edited not in (original, edited)

    (package / "step.py").write_text(HELLO)
    (package / "helper.py").write_text(HELPER)
    status, reverted, text = run()
    assert (status, text) == ("succeeded", "hello v1\n")  # the manifest held the edited key
    assert reverted == original  # the key is the code's, not the history's


def test_lost_outputs_another_registry_and_cache_false_each_rerun(tmp_path: Path) -> None:
    # Absolute: a relative SQLite registry_uri is not taken under the project (tracking_uri is).
    spec = _project(tmp_path, f"""
registry: {{model_name: m, registry_uri: "sqlite:///{tmp_path}/registry-a.db"}}
steps:
  data:
    component: tests.support.slow_component:COMPONENT
  note:
    component: tests.support.promise_components:REGISTRY_NOTE
""")
    assert _statuses(run_json(spec)) == {"data": "succeeded", "note": "succeeded"}
    assert _statuses(run_json(spec)) == {"data": "cached", "note": "cached"}
    output = tmp_path / "artifacts" / "p" / "data" / "data.csv"

    output.unlink()  # deleted
    assert _statuses(run_json(spec)) == {"data": "succeeded", "note": "cached"}
    assert output.read_text() == "partial,complete\n"
    output.write_text("partial,")  # cut short: its size no longer matches the manifest
    assert _statuses(run_json(spec)) == {"data": "succeeded", "note": "cached"}
    assert output.read_text() == "partial,complete\n"

    spec.write_text(spec.read_text().replace("registry-a.db", "registry-b.db"))
    before = _manifest(tmp_path, "note")["key"]
    assert _statuses(run_json(spec)) == {"data": "cached", "note": "succeeded"}
    assert _manifest(tmp_path, "note")["key"] != before
    note = (tmp_path / "artifacts" / "p" / "note" / "note.txt").read_text()
    assert note == f"sqlite:///{tmp_path / 'registry-b.db'}\n"

    spec.write_text(spec.read_text().replace(
        "slow_component:COMPONENT", "slow_component:COMPONENT\n    cache: false"))
    for _ in range(2):
        assert _statuses(run_json(spec)) == {"data": "succeeded", "note": "cached"}


HEAVY = {"mlflow", "pandas", "great_expectations", "sklearn", "pyarrow", "feast", "torch"}


def _imported(stderr: str) -> set[str]:
    """Top-level modules named in a `python -X importtime` log."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", stderr, re.MULTILINE)
    return {name.split(".")[0] for name in names}


@pytest.mark.slow
def test_an_all_cached_run_imports_no_ml_library(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    assert run_json(spec)["status"] == "succeeded"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "loopline", "run",
                           str(spec), "--json"], cwd=small_project, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(_statuses(json.loads(done.stdout)).values()) == {"cached"}
    imported = _imported(done.stderr)
    assert {"loopline", "yaml", "pydantic"} <= imported  # the log is read right
    assert HEAVY & imported == set()


def test_step_processes_with_one_loopline_run_id_share_one_mlflow_run(tmp_path: Path) -> None:
    """What DVC stages do: each step is its own `loopline step` process; LOOPLINE_RUN_ID
    makes them one run, in Loopline and in MLflow."""
    spec = _project(tmp_path, """
steps:
  first:
    component: tests.support.slow_component:COMPONENT
  second:
    component: tests.support.slow_component:FLAKY
    params: {fail_times: 0}
""")
    for step in ("first", "second"):
        done = subprocess_cli("step", str(spec), step, "--json", cwd=tmp_path,
                              env={"LOOPLINE_RUN_ID": "shared-run-1"})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["run_id"] == "shared-run-1"
        assert _manifest(tmp_path, step)["run_id"] == "shared-run-1"
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("p").experiment_id
    runs = client.search_runs([experiment], "tags.`loopline.run_id` = 'shared-run-1'")
    (pipeline,) = [r for r in runs if r.data.tags["loopline.level"] == "pipeline"]
    steps = {r.data.tags["loopline.step"]: r for r in runs
             if r.data.tags["loopline.level"] == "step"}
    assert set(steps) == {"first", "second"} and len(runs) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in steps.values()} == {pipeline.info.run_id}
    assert steps["first"].data.metrics == {"rows": 1.0}
    assert steps["second"].data.metrics == {"attempts": 1.0}
    assert client.get_run(pipeline.info.run_id).info.status == "FINISHED"
    assert len(client.search_runs([experiment])) == 3  # no second pipeline run anywhere
