"""The road to production, with real services on loopback and no cloud or cluster (none can
run here): moto's S3 server stands in for the bucket; the MLflow server, PostgreSQL (Feast's
SQL registry, the registry lock) and Redis (Feast's online store) are the real things.

`LOOPLINE_PROFILE=production` switches the unchanged example specs onto them; `loopline run`,
Airflow's `dag.test()` and kfp-local must then give the metrics of the all-local run.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support import run_cli, run_json
from tests.support.airflow import airflow_env, migrate, python
from tests.support.parity import assert_same_metrics, local_summary, parity_project
from tests.support.production import Stack, production_stack

pytestmark = [pytest.mark.slow, pytest.mark.services]
MODEL = "flights-late-arrival"


def _project(root: Path) -> Path:
    project = parity_project(root)
    (project / "pipelines" / "flights_torch.yaml").unlink()
    return project


def _in_production(stack: Stack, project: Path, artifacts: str,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "params.production.yaml").write_text(stack.overlay(artifacts))
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    for name, value in stack.exported().items():
        monkeypatch.setenv(name, value)


def _s3_manifest(stack: Stack, key: str) -> dict[str, Any]:
    body = stack.s3.client().get_object(Bucket=stack.s3.bucket, Key=key)["Body"].read()
    return dict(json.loads(body))


def test_production_profile_runs_every_backend_with_the_all_local_metrics(
        tmp_path: Path, redis_db: int, monkeypatch: pytest.MonkeyPatch,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    import redis
    from mlflow import MlflowClient

    from loopline.integrations.mlflow_registry import history

    project = _project(tmp_path / "p")
    spec = project / "pipelines" / "flights.yaml"
    ours = local_summary(tmp_path_factory)["steps"]["evaluate"]["metrics"]

    with production_stack(tmp_path, redis_db) as stack:
        _in_production(stack, project, "run", monkeypatch)
        production = run_json(spec)
        assert production["status"] == "succeeded", production
        assert_same_metrics(production["steps"]["evaluate"]["metrics"], ours)
        # Nothing landed in the project: artifacts in the bucket, runs and models on the
        # server, features in PostgreSQL and Redis.
        assert not (project / "artifacts").exists() and not (project / "mlflow.db").exists()
        evaluate = _s3_manifest(stack, "run/flights/evaluate/_loopline.json")
        assert_same_metrics(evaluate["metrics"], ours)
        client = MlflowClient(tracking_uri=stack.mlflow, registry_uri=stack.mlflow)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert champion.source.startswith(("models:/", "mlflow-artifacts:/"))
        objects = stack.s3.client().list_objects_v2(Bucket=stack.s3.bucket, Prefix="mlflow/")
        assert any(o["Key"].endswith("MLmodel") for o in objects.get("Contents", [])), \
            "the server keeps model files in the bucket"
        online = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
        assert online.dbsize() > 10, "materialize wrote the champion's features to Redis"

        # The loop: score a month, then drift decides and records its trigger in the
        # server's registry (not a local mlflow.db) and retrains.
        assert run_json(project / "pipelines" / "flights_scoring.yaml")["status"] == "succeeded"
        code, out, err = run_cli("drift", str(project / "pipelines" / "flights_drift.yaml"),
                                 "--json")
        assert code == 0, err[-3000:]
        drift = json.loads(out)
        assert drift["trigger"]["retrain"] and drift["retraining"]["status"] == "succeeded"
        events = [e for e in history(client, MODEL) if e.get("kind") == "retrain"]
        assert len(events) == 1 and events[0]["champion"] == champion.version
        assert not (project / "mlflow.db").exists() and not (project / "artifacts").exists()

        # kfp-local: the compiled pipeline, its tasks as subprocesses with the profile.
        _in_production(stack, project, "kfp", monkeypatch)
        code, out, err = run_cli("run", str(spec), "--backend", "kfp-local", "--json")
        assert code == 0, err[-3000:]
        assert_same_metrics(json.loads(out)["steps"]["evaluate"]["metrics"], ours)

        # Airflow's dag.test(): in-process tasks as on a Celery worker with the secrets exported.
        _in_production(stack, project, "airflow", monkeypatch)
        home = tmp_path / "airflow"
        home.mkdir()
        env = airflow_env(home, project / "pipelines")
        env.update({k: v for k, v in os.environ.items() if k.startswith(("LOOPLINE_", "AWS_"))})
        migrate(env)
        code = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
            import loopline_dags
            print("STATE", loopline_dags.flights.test().state)
        """)
        result = python(code, env)
        assert "STATE success" in result.stdout, (result.stdout + result.stderr)[-5000:]
        evaluate = _s3_manifest(stack, "airflow/flights/evaluate/_loopline.json")
        assert evaluate["orchestrator"] == "airflow"
        assert_same_metrics(evaluate["metrics"], ours)
        versions = client.search_model_versions(f"name='{MODEL}'")
        assert {v.tags.get("loopline.orchestrator") for v in versions} >= {"local", "kfp",
                                                                             "airflow"}
