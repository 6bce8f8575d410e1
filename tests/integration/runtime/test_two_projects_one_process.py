"""Two projects run in one process (a test session, Airflow's dag.test, a notebook) each
keep their own registry: MLflow's exported $MLFLOW_TRACKING_URI must not leak between them."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from tests.support import mlflow_uris_restored


def test_the_second_project_gets_its_own_registry(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.cli import main
    from loopline.cli.init import create_project

    first, second = create_project(tmp_path / "a"), create_project(tmp_path / "b")
    with mlflow_uris_restored(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        for project in (first, second):
            monkeypatch.chdir(project)
            assert main(["run", "pipelines/train.yaml"]) == 0
            assert "MLFLOW_TRACKING_URI" not in os.environ
    assert (second / "mlflow.db").is_file()  # not written into a's registry
    from mlflow import MlflowClient

    for project in (first, second):
        uri = f"sqlite:///{project / 'mlflow.db'}"
        versions = MlflowClient(uri, uri).search_model_versions("name='my-model'")
        assert [str(v.version) for v in versions] == ["1"], project
