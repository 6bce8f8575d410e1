"""Steps in pods that share no disk, simulated (no Kubernetes cluster can run here): the
Airflow DAG of the unchanged example is rendered in pod mode, then each step's pod runs as
its own process, in a fresh copy of what the step image holds (the project per .dockerignore,
at another absolute path than the project's), with exactly the rendered environment; its
secret references are filled from a dict standing in for Kubernetes secrets. The services
are real: moto's S3 server for the bucket, the MLflow server on PostgreSQL, Feast's
PostgreSQL registry and Redis online store.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.parity import assert_same_metrics, local_summary, parity_project
from tests.support.pods import build_image, render_airflow_pods, run_pod
from tests.support.production import production_stack

pytestmark = [pytest.mark.slow, pytest.mark.services]
MODEL = "flights-late-arrival"

def _pod_mode(project: Path) -> Path:
    """The example in pod mode: every step an Airflow KubernetesPodOperator."""
    for spec in ("flights_torch", "flights_scoring", "flights_drift"):
        (project / "pipelines" / f"{spec}.yaml").unlink()
    spec = project / "pipelines" / "flights.yaml"
    spec.write_text(spec.read_text().replace(
        "defaults:\n", "defaults:\n  isolation: {mode: kubernetes, namespace: ml}\n", 1))
    return spec


def _kfp_tasks_get_the_same_environment(project: Path, pods: dict[str, Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """One translation: each KFP task carries the environment its Airflow pod carries (but
    the per-task run id and params, which KFP passes as task inputs)."""
    import yaml

    from loopline.backends.kfp.compile import KfpCompiler
    from loopline.pipeline.load import load_pipeline

    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    ir, platform = yaml.safe_load_all(KfpCompiler().compile(
        load_pipeline(project / "pipelines" / "flights.yaml"), project / "ir.yaml").read_text())
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task in ir["root"]["dag"]["tasks"].values():
        step = task["taskInfo"]["name"]
        executor = task["componentRef"]["name"].replace("comp-", "exec-")
        container = ir["deploymentSpec"]["executors"][executor]["container"]
        kfp_env = {e["name"]: e["value"] for e in container.get("env", [])}
        kfp_env |= {k["envVar"]: (ref["secretName"], k["secretKey"])
                    for ref in kubernetes[executor]["secretAsEnv"] for k in ref["keyToEnv"]}
        (pod,) = pods[step]["spec"]["containers"]
        pod_env = {e["name"]: e.get("value") if "value" in e else (
            e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in pod["env"]}
        for per_task in ("LOOPLINE_ORCHESTRATOR_RUN", "LOOPLINE_PARAMS_JSON"):
            pod_env.pop(per_task)
        assert kfp_env == pod_env, step


def test_each_step_in_its_own_pod_registers_the_all_local_model(
        tmp_path: Path, redis_db: int, monkeypatch: pytest.MonkeyPatch,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlflow import MlflowClient

    local = local_summary(tmp_path_factory)  # where each step runs changes no figure
    planted = f"planted-{uuid.uuid4().hex}"  # the S3 secret key: moto takes any
    project = parity_project(tmp_path / "project")
    _pod_mode(project)
    with production_stack(tmp_path, redis_db, secret_access_key=planted) as stack:
        (project / "params.production.yaml").write_text(stack.overlay("pods"))
        image = build_image(project, tmp_path / "image")
        pods = render_airflow_pods(project / "pipelines", tmp_path / "airflow", "flights",
                                   "manual__pods-1", {"LOOPLINE_PROFILE": "production"})
        assert list(pods) == ["ingest", "validate", "feast", "features", "train", "evaluate",
                              "promote", "materialize"]
        rendered = json.dumps(pods)
        assert planted not in rendered and "secretKeyRef" in rendered
        _kfp_tasks_get_the_same_environment(project, pods, monkeypatch)
        logs = ""
        for step, pod in pods.items():
            done = run_pod(pod, image, tmp_path / "node", stack.secrets)
            logs += done.stdout + done.stderr
            assert done.returncode == 0, f"{step}: {(done.stdout + done.stderr)[-4000:]}"

        client = MlflowClient(tracking_uri=stack.mlflow, registry_uri=stack.mlflow)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert champion.tags["loopline.orchestrator"] == "airflow"
        assert champion.tags["loopline.run_id"].startswith("airflow-")
        s3 = stack.s3.client()
        evaluate = json.loads(s3.get_object(
            Bucket=stack.s3.bucket, Key="pods/flights/evaluate/_loopline.json")["Body"].read())
        assert_same_metrics(evaluate["metrics"], local["steps"]["evaluate"]["metrics"])
        # Nothing a pod wrote outlived it but what went to the shared services.
        assert not (tmp_path / "project" / "artifacts").exists()
        assert not list(image.rglob("mlflow.db")) and not (image / "artifacts").exists()

        # The planted secret reached the steps (they wrote to the bucket with it) and shows
        # up in no log, manifest or artifact.
        assert planted not in logs
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.s3.bucket) for o in page.get("Contents", [])]
        assert any(k.startswith("pods/flights/train/") for k in keys)
        assert any(k.startswith("mlflow/") for k in keys)
        for key in keys:
            body = s3.get_object(Bucket=stack.s3.bucket, Key=key)["Body"].read()
            assert planted.encode() not in body, key
