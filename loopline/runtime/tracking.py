"""Experiment tracking: one MLflow run per pipeline run, a nested run per executed step.

MLflow is imported only when a step actually executes, so a fully cached re-run stays fast.
Weights & Biases is optional and offline when no API key is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from loopline.integrations import mlflow_tags as tag
from loopline.integrations.mlflow_registry import point_mlflow_at
from loopline.runtime.processes import alive
from loopline.spec.model import PipelineSpec
from loopline.spec.paths import sqlite_file as sqlite_file


def tracking_uri(configured: str | None, project_root: Path) -> str:
    """The one rule, for steps and for `loopline models`: $MLFLOW_TRACKING_URI wins (production
    points it at a server); else the configured URI (a relative SQLite path is under the
    project); else SQLite in the project root — never the working folder."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    return under_project(configured, project_root) if configured else \
        f"sqlite:///{project_root / 'mlflow.db'}"


def under_project(uri: str, project_root: Path) -> str:
    """A relative SQLite path means a file in the project, never in the working folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{project_root / uri.removeprefix('sqlite:///')}"
    return uri


def resolve_uris(spec: PipelineSpec, project_root: Path) -> tuple[str, str]:
    """(tracking, registry): the registry is the spec's own, or the tracking store's."""
    tracking = tracking_uri(spec.tracking.mlflow.tracking_uri, project_root)
    registry = under_project(spec.registry.registry_uri, project_root) \
        if spec.registry and spec.registry.registry_uri else tracking
    return tracking, registry


# Schemes MLflow can store runs and models in; anything else fails deep inside MLflow.
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file",
                    "databricks")


def unreachable(uri: str, timeout_s: float = 5.0) -> str | None:
    """Why a tracking URI cannot work, found fast: MLflow itself retries a dead server for
    minutes and reports an unknown scheme with a traceback."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else "file"
    if scheme not in TRACKING_SCHEMES and not (len(scheme) == 1 and os.name == "nt"):
        return (f"unsupported tracking URI {uri!r}: use sqlite:///FILE, postgresql://..., "
                "http(s)://SERVER or a folder")
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
                return None
        except urllib.error.HTTPError:
            return None  # it answers: a proxy or an older server without /health
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"no MLflow server answers at {uri} ({reason})"
    return None


@contextlib.contextmanager
def sqlite_init_lock(uri: str) -> Iterator[None]:
    """Parallel steps (Airflow, Celery) opening a fresh SQLite store at once race on MLflow's
    schema migration; the first opener creates it while the others wait."""
    database = sqlite_file(uri)
    if database is None:
        yield
        return
    import fcntl

    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _owner() -> dict[str, str]:
    """Which process holds a run open, so a later run can tell an abandoned one."""
    return {tag.HOST: socket.gethostname(), tag.PID: str(os.getpid())}



def close_abandoned_runs(mlflow: Any) -> list[str]:
    """Runs of this experiment left RUNNING by a process of this host that no longer exists
    (SIGKILL, out of memory) are marked KILLED; MLflow would show them running forever. Runs
    of other hosts are left alone: their processes cannot be checked from here."""
    stale = mlflow.search_runs(
        filter_string=f"attributes.status = 'RUNNING' and "
                      f"tags.`{tag.HOST}` = '{socket.gethostname()}'",
        max_results=500, output_format="list")
    closed = []
    client = mlflow.MlflowClient()
    for run in stale:
        pid = run.data.tags.get(tag.PID, "")
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    return closed


class Tracker:
    def __init__(self, spec: PipelineSpec, tracking_uri: str, run_id: str,
                 tags: Mapping[str, str], project_root: Path) -> None:
        self.spec = spec
        self.project_root = project_root
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.tags = dict(tags)
        self._parent: Any = None
        self._wandb: Any = None

    def _mlflow(self) -> Any:
        import mlflow

        if self._parent is None:
            for name in ("mlflow", "alembic"):  # keep step output readable
                logging.getLogger(name).setLevel(logging.WARNING)
            os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
            point_mlflow_at(self.tracking_uri)
            with sqlite_init_lock(self.tracking_uri):
                self._experiment(mlflow)
            close_abandoned_runs(mlflow)
            existing = mlflow.search_runs(
                filter_string=f"tags.`{tag.RUN_ID}` = '{self.run_id}' and "
                              f"tags.`{tag.LEVEL}` = 'pipeline'", max_results=1,
                output_format="list")
            if existing:
                self._parent = mlflow.start_run(run_id=existing[0].info.run_id)
                mlflow.set_tags(_owner())  # this process holds it now
            else:
                self._parent = mlflow.start_run(
                    run_name=f"{self.spec.name} {self.run_id}",
                    tags={tag.RUN_ID: self.run_id, tag.LEVEL: "pipeline", **self.tags,
                          **_owner()})
        return mlflow

    def _experiment(self, mlflow: Any) -> None:
        """With a local store, artifacts go to <project>/mlruns — not the process's cwd."""
        name = self.spec.tracking.mlflow.experiment or self.spec.name
        if mlflow.get_experiment_by_name(name) is None and \
                self.tracking_uri.startswith(("sqlite:", "file:", "/")):
            # Another step process may create it at the same moment; that is fine.
            with contextlib.suppress(mlflow.exceptions.MlflowException):
                mlflow.create_experiment(name, artifact_location=(
                    self.project_root / "mlruns").as_uri())
        mlflow.set_experiment(name)

    @property
    def mlflow_run_id(self) -> str | None:
        return self._parent.info.run_id if self._parent else None

    @contextlib.contextmanager
    def step(self, step: str) -> Iterator[str]:
        mlflow = self._mlflow()
        with mlflow.start_run(run_name=step, nested=True,
                              tags={tag.RUN_ID: self.run_id, tag.STEP: step,
                                    tag.LEVEL: "step", **_owner()}) as run:
            yield run.info.run_id

    def log_metrics(self, step: str, metrics: Mapping[str, float]) -> None:
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if not numeric:
            return
        self._mlflow().log_metrics(numeric)
        if (run := self._wandb_run()) is not None:
            run.log({f"{step}/{k}": v for k, v in numeric.items()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow().log_params({k: str(v)[:500] for k, v in params.items()})

    def _wandb_run(self) -> Any:
        settings = self.spec.tracking.wandb
        if not settings.enabled:
            return None
        if self._wandb is None:
            import wandb

            mode = settings.mode
            if mode == "auto":
                mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
            self._wandb = wandb.init(project=settings.project or self.spec.name,
                                     name=self.run_id, mode=mode, reinit=True,
                                     config={tag.RUN_ID: self.run_id})
        return self._wandb

    def finish(self, status: str) -> None:
        if self._parent is not None:
            import mlflow

            mlflow.end_run(status="FAILED" if status == "failed" else "FINISHED")
            self._parent = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
