"""Fixtures shared by every test: an isolated environment, the example and the init skeleton."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import copy_example, mlflow_uris_restored

pytest_plugins = ["tests.support.s3_fixture"]
IMPORT_TIME_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest files first. `make test` hands whole files to two workers (--dist
    loadfile, so a module fixture such as a trained project is built once), and a long file
    picked up last leaves the other worker idle: files with tests that start services
    (Airflow, an MLflow server, PostgreSQL and Redis) go first, then the other slow ones."""
    def cost(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("services") else \
            1 if item.get_closest_marker("slow") else 2

    by_file: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        by_file[path] = min(by_file.get(path, 2), cost(item))
    items.sort(key=lambda item: by_file[item.nodeid.split("::")[0]])  # stable within a file


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the same environment and leaves none of its own behind: an
    in-process run exports MLflow's URIs, and a later test in the same worker (a module
    fixture first: it is set up before this) would otherwise train into that registry."""
    saved = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LOOPLINE_RUN_ID", raising=False)
    monkeypatch.delenv("LOOPLINE_ORCHESTRATOR_RUN", raising=False)
    monkeypatch.delenv("LOOPLINE_PROFILE", raising=False)
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # Specs in temporary projects name test components as `tests.support.<module>:ATTR`.
    monkeypatch.setenv("LOOPLINE_COMPONENT_PATH", str(Path(__file__).resolve().parents[1]))
    with mlflow_uris_restored():
        yield
    monkeypatch.undo()
    # Except what an import set, which lasts as long as the module: importing Feast sets
    # PROMETHEUS_MULTIPROC_DIR, and prometheus_client, imported after it, writes there.
    saved.update({name: os.environ[name] for name in IMPORT_TIME_VARIABLES
                  if name in os.environ})
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def flights_project(tmp_path: Path) -> Path:
    """The real example on a quarter of the data (Jan-Feb train, March eval) to keep tests fast."""
    return copy_example(tmp_path / "flights", data__last_month=3, data__eval_from="2013-03-01",
                        train__max_iter=60, gate__min_roc_auc=0.6)


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    from loopline.cli.init import create_project

    return create_project(tmp_path / "small")


@pytest.fixture
def redis_db() -> Iterator[int]:
    """A Redis database (1-15) of this test's own on 127.0.0.1:6379, empty when the test
    starts and flushed when it ends (tests.support.services.claimed_redis_db)."""
    from tests.support import require_service
    from tests.support.services import claimed_redis_db

    require_service("Redis", 6379)
    with claimed_redis_db() as db:
        yield db
