"""The `<spec>-rollout` KFP pipeline: its IR, a look run from the compiled YAML by kfp's local
SubprocessRunner on `loopline init`'s project (trained, v1 champion, a real v2 and real
prediction-log files), and the recurring run it is scheduled as. There is no cluster here:
the recurring run is checked against the fake KFP API server of test_kfp.py, which records
what the real kfp.Client sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.backends.kfp.rollout import compile_rollout, recurring_run
from loopline.integrations import prediction_log
from loopline.pipeline.load import load_pipeline
from tests.integration.backends import test_kfp
from tests.support import mlflow_uris_restored, registry_client
from tests.support.live_monitoring import MODEL, trained_project, with_rollout

pytestmark = pytest.mark.slow

ROLLOUT = """
env: {LOOPLINE_ROLLOUT_MARK: kfp}
secrets:
  MLFLOW_TRACKING_TOKEN: {secret: mlflow-credentials, key: token}
rollout:
  mode: shadow                # one step: the champion answers all, the challenger is mirrored
  steps: [100]
  min_requests: 20
  min_duration: 0s
  every: 90s
  gates: {metric: null}
"""
fake_kfp = test_kfp.fake_kfp  # the fake KFP API server (a fixture)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("kfp_rollout") / "project")


@pytest.fixture
def spec(trained: Path, tmp_path: Path) -> Path:
    return with_rollout(trained, tmp_path / "project", ROLLOUT) / "pipelines" / "train.yaml"


def _compiled(spec: Path, tmp_path: Path, **options: Any) -> tuple[dict[str, Any], Any]:
    ir, *platform = yaml.safe_load_all(
        compile_rollout(load_pipeline(spec), tmp_path / "rollout.yaml", **options).read_text())
    return ir, (platform or [{}])[0]


def test_the_rollout_pipeline_is_one_uncached_look_in_the_step_image(
        spec: Path, tmp_path: Path) -> None:
    from loopline.backends.base import spec_fingerprint

    ir, platform = _compiled(spec, tmp_path, image="registry.example/loopline-step:1",
                             project_root="/app")
    assert ir["pipelineInfo"]["name"] == "train-rollout"
    (task,) = ir["root"]["dag"]["tasks"].values()
    assert task["taskInfo"]["name"] == "rollout"
    assert task["cachingOptions"].get("enableCache", False) is False
    step_json = json.loads(task["inputs"]["parameters"]["step_json"]["runtimeValue"]["constant"])
    # The image's project, and the spec's fingerprint that the task checks before acting.
    assert step_json == {"project_root": "/app", "spec": "pipelines/train.yaml",
                         "fingerprint": spec_fingerprint(load_pipeline(spec)), "step": "rollout"}
    (executor,) = ir["deploymentSpec"]["executors"].values()
    container = executor["container"]
    assert container["image"] == "registry.example/loopline-step:1"
    assert "run_kfp_rollout(step_json, params)" in container["command"][-1]
    # The step environment every task gets: values as values, secrets as references.
    assert {"name": "LOOPLINE_ROLLOUT_MARK", "value": "kfp"} in container["env"]
    (kubernetes,) = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    assert kubernetes["secretAsEnv"][0]["secretName"] == "mlflow-credentials"
    assert kubernetes["secretAsEnv"][0]["keyToEnv"] == [
        {"secretKey": "token", "envVar": "MLFLOW_TRACKING_TOKEN"}]


def _log(project: Path, version: str, route: str, rows: int) -> None:
    """Real, healthy prediction-log rows, timed now (after the rollout's step began)."""
    now = datetime.now(UTC)
    prediction_log.write_file(
        prediction_log.log_folder(str(project / "artifacts"), MODEL),
        [prediction_log.row(f"{route}-{i}", now + timedelta(microseconds=i), version, route,
                            200, 5.0, 0.3) for i in range(rows)])


@pytest.fixture
def kfp_local(tmp_path: Path) -> Iterator[None]:
    import kfp.local

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False),
                   pipeline_root=str(tmp_path / "kfp-local"))
    with mlflow_uris_restored():
        yield


def test_a_run_of_the_compiled_pipeline_takes_one_acting_look(
        spec: Path, tmp_path: Path, kfp_local: None) -> None:
    """The first run finds another controller acting (a `watch`): it leaves the rollout be
    and succeeds. The next run acts: the healthy challenger is promoted."""
    from kfp import components

    from loopline.integrations.mlflow_registry import history
    from loopline.runtime import rollout

    loaded = load_pipeline(spec)
    project = loaded.project_root
    assert rollout.start(loaded, "2")["status"] == "running"
    _log(project, "1", "champion", 40)
    _log(project, "2", "shadow", 40)
    pipeline = components.load_component_from_file(
        str(compile_rollout(loaded, tmp_path / "rollout.yaml")))
    with rollout.watching(loaded):
        busy = json.loads(pipeline().output)
    assert busy["status"] == "running" and "another controller" in busy["busy"]
    client = registry_client(project)
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == "1"

    state = json.loads(pipeline().output)
    assert state["status"] == "promoted" and state["decision"]["action"] == "promote", state
    assert "looks" not in state and "busy" not in state
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases["champion"] == "2" and "canary" not in aliases
    assert [(e["action"], e["version"]) for e in history(client, MODEL)
            if e.get("kind") == "rollout"] == [("started", "2"), ("promoted", "2")]


def test_recurring_run_looks_every_rollout_every_one_at_a_time(
        spec: Path, fake_kfp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "token-from-env")
    result = recurring_run(load_pipeline(spec), fake_kfp, image="registry.example/step:1",
                           params={"train": {"max_iter": 7}})
    assert result == {"recurring_run_id": "rr-1", "experiment": "train", "interval_s": 90}
    (request,) = [c.body for c in test_kfp.FakeKfp.calls if c.path.endswith("/recurringruns")]
    assert request["display_name"] == "train-rollout"
    assert request["trigger"]["periodic_schedule"]["interval_second"] in ("90", 90)
    assert "cron_schedule" not in request["trigger"]
    assert request["max_concurrency"] in ("1", 1) and request["no_catchup"] is True
    assert request["experiment_id"] == "exp-1"
    assert request["runtime_config"]["parameters"]["params"] == {"train": {"max_iter": 7}}
    ir = test_kfp._submitted_ir(request)
    assert ir["pipelineInfo"]["name"] == "train-rollout"
    (executor,) = ir["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "registry.example/step:1"
    step_json = json.loads(next(iter(ir["root"]["dag"]["tasks"].values()))["inputs"][
        "parameters"]["step_json"]["runtimeValue"]["constant"])
    assert step_json["project_root"] == "/app"  # the project in the step image
    test_kfp._assert_every_request_carries("Bearer token-from-env")


def test_a_look_refuses_an_image_whose_spec_differs(spec: Path, tmp_path: Path) -> None:
    """As every Loopline task on KFP: a spec changed since compiling is refused before the
    look acts on the registry."""
    from loopline.backends.base import SpecMismatch
    from loopline.backends.kfp.rollout import run_kfp_rollout

    ir, _ = _compiled(spec, tmp_path)
    (task,) = ir["root"]["dag"]["tasks"].values()
    step_json = task["inputs"]["parameters"]["step_json"]["runtimeValue"]["constant"]
    spec.write_text(spec.read_text().replace("min_requests: 20", "min_requests: 1"))
    with pytest.raises(SpecMismatch, match="not the spec the pipeline was compiled from"):
        run_kfp_rollout(step_json, {})
    assert not (spec.parent.parent / "artifacts" / "monitoring").exists()  # no look taken


def test_the_cli_compiles_the_rollout_pipeline_and_refuses_a_spec_without_one(
        spec: Path, tmp_path: Path) -> None:
    from tests.support import run_cli

    out = tmp_path / "cli-rollout.yaml"
    code, _, err = run_cli("compile", "kfp", str(spec), "--rollout", "-o", str(out))
    assert code == 0, err
    ir = next(yaml.safe_load_all(out.read_text()))
    assert ir["pipelineInfo"]["name"] == "train-rollout"
    plain = spec.parent / "plain.yaml"
    plain.write_text(spec.read_text().split("\nrollout:")[0].replace("name: train",
                                                                      "name: plain"))
    code, _, err = run_cli("compile", "kfp", str(plain), "--rollout", "-o", str(out))
    assert code == 2 and "has no `rollout:` block" in err
