"""`loopline models` over a real registry: SQLite locally, and an MLflow server on PostgreSQL."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import registry_client, require_service, run_cli, run_json

MODEL = "my-model"


def _models(project: Path, *args: str) -> tuple[int, str, str]:
    return run_cli("models", *args, "--tracking-uri", f"sqlite:///{project / 'mlflow.db'}")


@pytest.mark.slow
def test_list_promote_rollback_with_history(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    assert run_json(spec)["model"]["version"] == "1"
    assert run_json(spec, "--set", "train.seed=8")["model"]["version"] == "2"
    code, out, _ = _models(small_project, "list", MODEL, "--json")
    listing = json.loads(out)
    aliases = {row["version"]: row["aliases"] for row in listing["versions"]}
    champion_before = next(v for v, a in aliases.items() if "champion" in a)

    code, out, err = _models(small_project, "rollback", MODEL)
    if champion_before == "2":  # v2 passed its gate and took over; roll back to v1
        assert code == 0, err
        assert "champion v2 -> v1" in out
    else:
        assert code == 1 and "no previous champion" in err
        code, out, err = _models(small_project, "promote", MODEL, "2", "--force")
        assert code == 0, err
        code, out, err = _models(small_project, "rollback", MODEL)
        assert code == 0 and "champion v2 -> v1" in out
    code, out, _ = _models(small_project, "list", MODEL, "--json")
    listing = json.loads(out)
    aliases = {row["version"]: row["aliases"] for row in listing["versions"]}
    assert "champion" in aliases["1"]
    assert "previous_champion" in aliases["2"]
    history = listing["history"]
    assert history[-1]["alias"] == "champion" and history[-1]["version"] == "1"
    assert history[-1]["reason"].startswith("rollback from version 2")
    assert next(e["version"] for e in history if e["alias"] == "champion" and e["version"]) == "1"

    code, out, _ = _models(small_project, "list", MODEL)
    assert code == 0
    assert "rollback from version 2" in out and "champion" in out


@pytest.mark.slow
def test_promote_refuses_a_failed_version_without_force(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    run_json(spec)
    failed = run_json(spec, "--set", "gate.min_roc_auc=0.99")
    assert failed["gate"]["passed"] is False
    assert failed["model"]["aliases"] == ["challenger"]
    code, _, err = _models(small_project, "promote", MODEL, "2")
    assert code == 1 and "failed its gate" in err
    code, _, err = _models(small_project, "rollback", "no-such-model")
    assert code == 1 and "error:" in err


@pytest.mark.slow
def test_a_never_verified_version_cannot_become_champion(small_project: Path) -> None:
    """A crash between registration and the load-back check leaves a version without the
    `verified` tag (simulated here by removing it from a real, gate-passing version)."""
    spec = small_project / "pipelines" / "train.yaml"
    first = run_json(spec)
    assert first["model"]["aliases"] == ["challenger", "champion"]
    client = registry_client(small_project)
    assert client.get_model_version(MODEL, "1").tags["loopline.verified"] == "true"
    second = run_json(spec, "--set", "gate.min_roc_auc=0.99")  # a challenger, not champion
    assert second["model"]["aliases"] == ["challenger"]
    client.delete_model_version_tag(MODEL, "2", "loopline.verified")

    code, _, err = _models(small_project, "promote", MODEL, "2")
    assert code == 1 and "never verified" in err, err
    code, out, _ = _models(small_project, "list", MODEL, "--json")
    rows = {row["version"]: row for row in json.loads(out)["versions"]}
    assert rows["2"]["verdict"] == "incomplete" and rows["1"]["verdict"] == "passed"
    assert "champion" in rows["1"]["aliases"]

    code, out, err = _models(small_project, "promote", MODEL, "2", "--force")
    assert code == 0, err
    history = json.loads(_models(small_project, "list", MODEL, "--json")[1])["history"]
    assert history[-1]["version"] == "2"
    assert history[-1]["reason"].startswith("manual promote (forced: never verified")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback with a fresh PostgreSQL database as its store."""
    require_service("PostgreSQL", 5432)
    import psycopg2

    database = f"loopline_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {database}")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
         "--artifacts-destination", str(tmp_path / "mlartifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


@pytest.mark.slow
@pytest.mark.services
def test_pipeline_against_mlflow_server_on_postgres(small_project: Path, mlflow_server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = small_project / "pipelines" / "train.yaml"
    first = run_json(spec)
    assert first["model"] == {"name": MODEL, "version": "1", "aliases": ["challenger", "champion"]}
    second = run_json(spec, "--set", "train.seed=9")
    assert second["model"]["version"] == "2"  # a string over REST too
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version(MODEL, "1")
    assert version.tags["loopline.verdict"] == "passed"
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id],
                              filter_string="tags.`loopline.level` = 'pipeline'")
    assert len(runs) == 2
    steps = client.search_runs([runs[0].info.experiment_id],
                               filter_string=f"tags.`loopline.run_id` = '{first['run_id']}' "
                                             "and tags.`loopline.level` = 'step'")
    assert {r.data.tags["loopline.step"] for r in steps} == set(first["steps"])


@pytest.mark.slow
def test_a_broken_registered_copy_never_gets_an_alias(small_project: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Corrupt the uploaded model file on disk between upload and load-back (a real broken
    artifact, not a mocked error): promotion must stop before any alias moves."""
    import mlflow.sklearn

    spec = small_project / "pipelines" / "train.yaml"
    assert run_json(spec)["model"]["version"] == "1"
    real_load = mlflow.sklearn.load_model

    def corrupt_then_load(model_uri: str, *args: object, **kwargs: object) -> object:
        local = Path(mlflow.artifacts.download_artifacts(model_uri))
        for pickled in local.rglob("model.pkl"):
            pickled.write_bytes(b"not a pickle")
        stored = list(small_project.rglob("model.pkl"))
        for path in stored:
            if "mlruns" in str(path) or "mlartifacts" in str(path):
                path.write_bytes(b"not a pickle")
        return real_load(model_uri, *args, **kwargs)

    monkeypatch.setattr(mlflow.sklearn, "load_model", corrupt_then_load)
    summary = run_json(spec, "--set", "train.seed=8")
    assert summary["steps"]["promote"]["status"] == "failed"
    assert "could not be loaded back" in summary["steps"]["promote"]["error"]
    assert "aliases left unchanged" in summary["steps"]["promote"]["error"]
    client = registry_client(small_project)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "1"
    assert not client.get_model_version(MODEL, "2").aliases
