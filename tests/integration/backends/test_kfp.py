"""Kubeflow Pipelines: the compiled IR, shared component YAMLs, kfp-local runs, submission
to a (fake, local) KFP API server, the step image and secrets."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest
import yaml

from loopline.backends.kfp.compile import KfpCompiler
from loopline.backends.kfp.components import export_components
from loopline.pipeline.load import load_pipeline
from tests.support import REPO, copy_example, run_cli, run_json
from tests.support.parity import assert_same_metrics, local_summary, parity_project

pytestmark = pytest.mark.slow


def _compiled(spec: Path, tmp_path: Path, **options: Any) -> dict[str, Any]:
    """The pipeline IR; the Kubernetes platform spec (when there is one) under `platform`."""
    out = KfpCompiler().compile(load_pipeline(spec), tmp_path / "pipeline.yaml", **options)
    ir, *platform = yaml.safe_load_all(out.read_text())
    return {**ir, "platform": platform[0] if platform else {}}


def _submitted_ir(run: dict[str, Any]) -> dict[str, Any]:
    """A submitted run's pipeline IR: the kfp client nests it beside the Kubernetes platform
    spec when the pipeline has one (secrets, node selectors)."""
    spec = run["pipeline_spec"]
    return dict(spec.get("pipeline_spec", spec))


def _executor(ir: dict[str, Any], step: str) -> dict[str, Any]:
    task = ir["root"]["dag"]["tasks"]
    name = next(t for t, v in task.items() if v["taskInfo"]["name"] == step)
    executor = task[name]["componentRef"]["name"].replace("comp-", "exec-")
    return ir["deploymentSpec"]["executors"][executor]["container"]


def test_ir_keeps_resources_retries_caching_and_image(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    spec = project / "pipelines" / "flights_torch.yaml"
    spec.write_text(spec.read_text().replace(
        "gpu: {count: 1, require: false}", "gpu: {count: 2, type: nvidia-tesla-a100}"))
    ir = _compiled(spec, tmp_path, image="registry.example/loopline-step:1")
    train = _executor(ir, "train")
    # One Kubernetes translation for every backend (backends/kubernetes.py): the GPU is the
    # nvidia.com/gpu resource, its type a node selector; CPU is requested, never limited.
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "2"  # not dropped
    assert train["resources"]["cpuRequest"] == 2.0 and "cpuLimit" not in train["resources"]
    train_executor = next(k for k, v in ir["deploymentSpec"]["executors"].items()
                          if v["container"] is train)
    selector = ir["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        train_executor]["nodeSelector"]
    assert selector["labels"] == {"nvidia.com/gpu.product": "nvidia-tesla-a100"}
    assert train["resources"]["memoryLimit"] == pytest.approx(8 * 1024**3 / 1e9)
    assert train["image"] == "registry.example/loopline-step:1"
    assert "accelerator" not in _executor(ir, "ingest")["resources"]
    tasks = {v["taskInfo"]["name"]: v for v in ir["root"]["dag"]["tasks"].values()}
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 1
    assert tasks["train"]["retryPolicy"]["backoffDuration"] == "5s"
    assert tasks["ingest"]["cachingOptions"]["enableCache"] is True
    assert tasks["promote"]["cachingOptions"].get("enableCache", False) is False
    assert sorted(tasks["evaluate"]["dependentTasks"]) == [
        "features-feast", "train-torch", "validate-expectations"]
    params = ir["root"]["inputDefinitions"]["parameters"]["params"]
    assert params["parameterType"] == "STRUCT"
    assert params["defaultValue"]["train"]["max_iter"] == 200
    inputs = tasks["train"]["inputs"]["artifacts"]
    assert inputs["in_train"]["taskOutputArtifact"]["producerTask"] == "features-transform"


def test_component_yamls_are_fresh_and_load(tmp_path: Path) -> None:
    from kfp import components

    fresh = export_components(tmp_path / "components")
    for path in fresh:
        checked_in = REPO / "components" / path.name
        assert checked_in.exists(), f"missing {checked_in}: run `loopline components export`"
        assert checked_in.read_text() == path.read_text(), \
            f"{checked_in} is stale: run `loopline components export`"
        component = components.load_component_from_file(str(checked_in))
        assert component.component_spec.implementation.container.image == "loopline-step:0.1.0"
    assert len(fresh) == len(list((REPO / "components").glob("*.yaml")))
    evaluate = yaml.safe_load((REPO / "components" / "evaluate.gate.yaml").read_text())
    outputs = evaluate["components"]["comp-evaluate-gate"]["outputDefinitions"]["artifacts"]
    assert outputs["out_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    validate = yaml.safe_load((REPO / "components" / "validate.expectations.yaml").read_text())
    report = validate["components"]["comp-validate-expectations"]["outputDefinitions"]
    assert report["artifacts"]["out_report"]["artifactType"]["schemaTitle"] == "system.HTML"


def test_kfp_local_gives_the_same_metrics_as_loopline_run(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    via_kfp = parity_project(tmp_path / "kfp")
    code, out, err = run_cli("run", str(via_kfp / "pipelines" / "flights.yaml"),
                             "--backend", "kfp-local", "--json")
    summary = json.loads(out)
    assert code == 0, err[-3000:]
    assert {s["status"] for s in summary["steps"].values()} == {"succeeded"}
    assert all(s["duration_s"] > 0 for s in summary["steps"].values()), summary["steps"]
    assert summary["model"]["aliases"] == ["challenger", "champion"]
    # Loopline's progress on the terminal; kfp's executor dumps in a log file (#12 §6).
    assert "[1/8] ingest: running" in err and "✓ train: done in " in err, err[-3000:]
    assert "KFP Executor" not in err and len(err.splitlines()) < 40, err[-3000:]
    (log,) = (via_kfp / ".loopline" / "logs").glob("kfp-local-*.log")
    assert "KFP Executor" in log.read_text()
    assert_same_metrics(summary["steps"]["evaluate"]["metrics"],
                        local_summary(tmp_path_factory)["steps"]["evaluate"]["metrics"])
    from tests.support import registry_client

    version = registry_client(via_kfp).get_model_version_by_alias("flights-late-arrival",
                                                                  "champion")
    assert version.tags["loopline.orchestrator"] == "kfp"


class Call(NamedTuple):
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case


class FakeKfp(BaseHTTPRequestHandler):
    """A stand-in for the KFP API server (there is no cluster here): records every request
    the real kfp.Client sends, headers included, and answers like the v2beta1 API."""

    calls: ClassVar[list[Call]] = []

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: dict[str, Any]) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.calls.append(Call(self.command, self.path, body, headers))

    def do_GET(self) -> None:
        self._record({})
        self._reply({"multi_user": False} if "healthz" in self.path else {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self._record(body)
        kind = self.path.rsplit("/", 1)[-1]
        ids = {"experiments": {"experiment_id": "exp-1"}, "runs": {"run_id": "run-1"},
               "recurringruns": {"recurring_run_id": "rr-1"}}
        self._reply({**ids.get(kind, {}), "display_name": body.get("display_name")})

    def do_other(self) -> None:  # recorded too, so that a check on every request sees it
        self._record({})
        self._reply({})

    do_PUT = do_PATCH = do_DELETE = do_other

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def fake_kfp() -> Iterator[str]:
    FakeKfp.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_submit_run_and_recurring_run(fake_kfp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "token-from-env")
    spec = str(REPO / "pipelines" / "flights.yaml")
    code, out, err = run_cli("submit", "kfp", spec, "--host", fake_kfp, "--experiment", "nightly",
                             "--params", '{"train": {"max_iter": 300}}')
    assert code == 0, err
    assert json.loads(out) == {"run_id": "run-1", "experiment": "nightly"}
    run = next(c.body for c in FakeKfp.calls if c.path.endswith("/runs"))
    assert _submitted_ir(run)["pipelineInfo"]["name"] == "flights"
    # The spec's secrets travel as the Kubernetes platform spec, references only.
    assert "secretAsEnv" in json.dumps(run["pipeline_spec"]["platform_spec"])
    assert run["runtime_config"]["parameters"]["params"] == {"train": {"max_iter": 300}}
    assert run["experiment_id"] == "exp-1"
    _assert_every_request_carries("Bearer token-from-env")
    FakeKfp.calls.clear()
    code, out, _ = run_cli("submit", "kfp", spec, "--host", fake_kfp, "--schedule")
    assert code == 0
    assert json.loads(out)["cron"] == "0 0 0 * * 0"  # @weekly, with KFP's seconds field
    recurring = next(c.body for c in FakeKfp.calls if c.path.endswith("/recurringruns"))
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 0 * * 0"
    assert recurring["max_concurrency"] in ("1", 1)
    _assert_every_request_carries("Bearer token-from-env")


def _assert_every_request_carries(authorization: str) -> None:
    """The token on every request the client made: reads (GET) and writes (POST), at least
    one of each, so the check can never pass on requests that were not made."""
    methods = {c.method for c in FakeKfp.calls}
    assert {"GET", "POST"} <= methods, [(c.method, c.path) for c in FakeKfp.calls]
    missing = [(c.method, c.path, c.headers.get("authorization")) for c in FakeKfp.calls
               if c.headers.get("authorization") != authorization]
    assert not missing, missing


# The alert routes each example spec declares (pipelines/*.yaml `alerts:`).
ALERT_SECRETS = {"flights.yaml": ("LOOPLINE_SLACK_WEBHOOK", "LOOPLINE_PAGERDUTY_KEY"),
                 "flights_drift.yaml": ("LOOPLINE_SLACK_WEBHOOK",)}


def test_every_task_gets_the_step_environment_and_no_secret_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task, the drift pipeline's `retrain` included (it reads and writes the
    registry), gets the spec's secrets as Kubernetes secret references and its `env:` as
    values; a planted secret value never reaches the IR."""
    planted = "s3cr3t-planted-value-7f2c"
    project = copy_example(tmp_path / "p")
    (project / "params.production.yaml").write_text(
        "platform:\n  mlflow: http://mlflow.mlops:5000\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LOOPLINE_FEAST_REGISTRY_URL",
                 "LOOPLINE_FEAST_REDIS", "LOOPLINE_LOCK_URL"):
        monkeypatch.setenv(name, planted)
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    for spec in ("flights.yaml", "flights_drift.yaml"):
        out = KfpCompiler().compile(load_pipeline(project / "pipelines" / spec),
                                    tmp_path / f"{spec}.ir.yaml")
        text = out.read_text()
        assert planted not in text
        ir, platform = yaml.safe_load_all(text)
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        names = {t["taskInfo"]["name"] for t in ir["root"]["dag"]["tasks"].values()}
        assert len(executors) == len(names), (sorted(executors), sorted(names))
        for name in names:
            container = _executor(ir, name)
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlops:5000", name
            assert env["LOOPLINE_PROFILE"] == "production", name
        for executor in executors.values():
            refs = {k["envVar"]: (ref["secretName"], k["secretKey"])
                    for ref in executor["secretAsEnv"] for k in ref["keyToEnv"]}
            assert refs["AWS_SECRET_ACCESS_KEY"] == ("loopline-s3", "secret-access-key")
            # The spec's secrets, its alert routes' (optional ones) among them.
            assert set(refs) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                 "LOOPLINE_FEAST_REGISTRY_URL", "LOOPLINE_FEAST_REDIS",
                                 "LOOPLINE_LOCK_URL", *ALERT_SECRETS[spec]}, sorted(refs)
    assert "retrain" in names  # the drift pipeline's last task was among them


def test_a_task_refuses_an_image_whose_spec_differs(tmp_path: Path) -> None:
    """The compiled pipeline carries the spec's fingerprint; a step image built from another
    version of the spec is refused before the step runs (as `dvc repro` refuses a stale
    dvc.yaml), instead of running a spec nobody compiled."""
    from loopline.backends.base import SpecMismatch
    from loopline.backends.kfp.task import run_kfp_step

    project = copy_example(tmp_path / "p")
    spec = project / "pipelines" / "flights.yaml"
    ir = _compiled(spec, tmp_path)
    task = next(t for t in ir["root"]["dag"]["tasks"].values()
                if t["taskInfo"]["name"] == "ingest")
    step_json = task["inputs"]["parameters"]["step_json"]["runtimeValue"]["constant"]
    assert json.loads(step_json)["fingerprint"]
    spec.write_text(spec.read_text().replace("max_iter: ${train.max_iter}", "max_iter: 7"))
    with pytest.raises(SpecMismatch, match="not the spec the pipeline was compiled from"):
        run_kfp_step(step_json, {}, "run-1", {}, {})
    assert not (project / "artifacts").exists()  # refused before anything ran


def test_step_image_installs_the_lock_file() -> None:
    """The image cannot be built here (no Docker engine); check what it would install."""
    dockerfile = (REPO / "Dockerfile").read_text()
    constraints = dict(line.split("==", 1) for line in
                       (REPO / "constraints.txt").read_text().splitlines()
                       if "==" in line and not line.startswith("#"))
    constraints = {k.lower(): v.split()[0] for k, v in constraints.items()}
    installs = re.findall(r"pip install ([^\n\\]+)", dockerfile)
    assert any('-c constraints.txt ".[all]"' in line for line in installs)
    assert all("-c constraints.txt" in line for line in installs if "--upgrade pip" not in line)
    for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s\"]*)", dockerfile):
        assert constraints[name.lower()] == version, f"{name}=={version} vs constraints.txt"
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    for source in re.findall(r"^COPY (.+) \./", dockerfile, flags=re.M):
        for item in source.split():
            assert (REPO / item).exists(), item
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    def named(extra: str) -> set[str]:  # an extra with the extras it names, transitively
        found = {extra}
        for requirement in extras[extra]:
            if match := re.fullmatch(r"loopline\[(.*)\]", requirement):
                for inner in match.group(1).split(","):
                    found |= named(inner)
        return found

    # The image installs [all]: it must bring every runtime extra, object stores included.
    assert named("all") == set(extras) - {"dev"}
    assert {"s3", "gcs", "azure"} <= named("all")
    # What object stores need at run time comes from [all] itself, not from the dev extra
    # that the tests' venv also has: s3fs/gcsfs/adlfs for artifacts and ingest, boto3 for
    # the MLflow server's S3 artifacts.
    packages = {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower()
                for extra in named("all") for requirement in extras[extra]}
    assert {"s3fs", "boto3", "gcsfs", "adlfs"} <= packages


def test_drift_pipeline_submits_retraining_like_submit_kfp(
        tmp_path: Path, fake_kfp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp-local runs the compiled drift pipeline; its retrain task submits the training
    pipeline to the (fake) KFP API with the same `submit` as `loopline submit kfp`."""
    from loopline.integrations.mlflow_registry import history
    from tests.support import registry_client

    project = copy_example(tmp_path / "p", data__last_month=2, data__eval_from="2013-02-01",
                           train__max_iter=20, gate__min_roc_auc=0.55)
    pipelines = project / "pipelines"
    run_json(pipelines / "flights.yaml")
    run_json(pipelines / "flights_scoring.yaml", "--set", "scoring.month=7")
    ir = _compiled(pipelines / "flights_drift.yaml", tmp_path)
    tasks = {t["taskInfo"]["name"]: t for t in ir["root"]["dag"]["tasks"].values()}
    assert tasks["retrain"]["dependentTasks"] == [
        n for n, t in ir["root"]["dag"]["tasks"].items() if t["taskInfo"]["name"] == "drift"]
    assert tasks["retrain"]["inputs"]["artifacts"]["in_summary"]["taskOutputArtifact"][
        "outputArtifactKey"] == "out_summary"

    monkeypatch.setenv("LOOPLINE_KFP_HOST", fake_kfp)
    drift = str(pipelines / "flights_drift.yaml")
    code, _, err = run_cli("run", drift, "--backend", "kfp-local", "--json")
    assert code == 0, err[-3000:]
    runs = [c.body for c in FakeKfp.calls if c.path.endswith("/runs")]
    assert [_submitted_ir(r)["pipelineInfo"]["name"] for r in runs] == ["flights"]
    events = [e for e in history(registry_client(project), "flights-late-arrival")
              if e.get("kind") == "retrain"]
    assert [(e["orchestrator"], e["kfp_run"], e["host"]) for e in events] == \
        [("kfp", "run-1", fake_kfp)]
    assert "major drift" in events[0]["reason"]

    FakeKfp.calls.clear()  # the same drift event again: decided, not submitted twice
    code, _, err = run_cli("run", drift, "--backend", "kfp-local", "--json")
    assert code == 0, err[-3000:]
    assert not [c.path for c in FakeKfp.calls if c.path.endswith("/runs")]
