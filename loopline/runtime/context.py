"""The run: its id, store and tracker; and the per-step context handed to components."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.integrations import mlflow_tags as tag
from loopline.runtime import lineage
from loopline.runtime.hashing import StatCache
from loopline.runtime.hooks import ConsoleProgress, RunHooks
from loopline.runtime.store import ArtifactStore, open_store
from loopline.runtime.tracking import Tracker, resolve_uris
from loopline.spec.load import LoadedSpec
from loopline.spec.model import Resources
from loopline.spec.paths import location

# A pod or a worker that runs one step of an orchestrator's run finds that run's id here.
ORCHESTRATOR_RUN_ENV = "LOOPLINE_ORCHESTRATOR_RUN"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def orchestrator_run_id(orchestrator: str, native_run: str) -> str:
    """The Loopline run id of an orchestrator's run (`airflow-manual__2026-…`), the same in
    every process a step of that run executes in: file-name and tag safe."""
    return f"{orchestrator}-{_UNSAFE.sub('_', native_run)}"


@dataclass
class Run:
    """State shared by the steps of one pipeline run, whichever backend drives it."""

    loaded: LoadedSpec
    run_id: str
    orchestrator: str = "local"
    orchestrator_run: str = ""
    hooks: RunHooks = field(default_factory=ConsoleProgress)
    store: ArtifactStore | None = None  # default: the spec's artifact root
    tracker: Tracker = field(init=False)
    sources: StatCache = field(init=False)

    def __post_init__(self) -> None:
        spec, root = self.loaded.spec, self.loaded.project_root
        if self.store is None:
            self.store = open_store(spec.artifacts.root, root)
        self.tracking_uri, self.registry_uri = resolve_uris(spec, root)
        self.tracker = Tracker(spec, self.tracking_uri, self.run_id,
                               {tag.SPEC_HASH: self.loaded.spec_hash,
                                tag.PIPELINE: spec.name,
                                tag.ORCHESTRATOR: self.orchestrator}, root)
        self.sources = StatCache(root / ".loopline" / "source-hashes.json")

    @classmethod
    def for_orchestrator(cls, loaded: LoadedSpec, orchestrator: str, native_run: str,
                         **kwargs: Any) -> Run:
        """A step of an Airflow DAG run or a KFP run, wherever it executes."""
        return cls(loaded, orchestrator_run_id(orchestrator, native_run), orchestrator,
                   orchestrator_run=native_run, **kwargs)

    @classmethod
    def from_env(cls, loaded: LoadedSpec, orchestrator: str, **kwargs: Any) -> Run:
        """Steps run as separate processes share a run: an orchestrator's run id in
        $LOOPLINE_ORCHESTRATOR_RUN (pods), or Loopline's own in $LOOPLINE_RUN_ID."""
        if native := os.environ.get(ORCHESTRATOR_RUN_ENV):
            return cls.for_orchestrator(loaded, orchestrator, native, **kwargs)
        run_id = os.environ.get("LOOPLINE_RUN_ID") or new_run_id()
        return cls(loaded, run_id, orchestrator, **kwargs)


class StepRunContext:
    """Implements `loopline.components.contract.StepContext` for one step execution."""

    def __init__(self, run: Run, step: str, staging: Path, inputs: Mapping[str, Path],
                 outputs: Mapping[str, str], lineage_facts: Mapping[str, str]) -> None:
        self._run = run
        self.pipeline = run.loaded.spec.name
        self.step = step
        self.run_id = run.run_id
        self.project_root = run.loaded.project_root
        root = run.loaded.spec.artifacts.root
        self.artifacts_root = location(root, self.project_root)
        self.tracking_uri = run.tracking_uri
        self.registry_uri = run.registry_uri
        self.model_name = run.loaded.spec.registry.model_name if run.loaded.spec.registry else None
        self.resources: Resources = run.loaded.spec.resources(step)
        self._staging = staging
        self._inputs = dict(inputs)
        self._outputs = dict(outputs)
        self._lineage = dict(lineage_facts)
        self.log_lines: list[str] = []

    def input_path(self, name: str) -> Path | None:
        return self._inputs.get(name)

    def output_path(self, name: str) -> Path:
        if name not in self._outputs:
            raise KeyError(f"{self.step}: component declares no output {name!r}")
        return self._staging / self._outputs[name]

    def log(self, message: str) -> None:
        self.log_lines.append(message)
        self._run.hooks.step_log(self.step, message)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._run.tracker.log_metrics(self.step, metrics)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._run.tracker.log_params(params)

    def lineage(self) -> dict[str, str]:
        return {**self._lineage, "mlflow_run_id": self._run.tracker.mlflow_run_id or ""}


def lineage_facts(run: Run, data_hashes: Mapping[str, str]) -> dict[str, str]:
    root = run.loaded.project_root
    return {"pipeline": run.loaded.spec.name, "spec_hash": run.loaded.spec_hash,
            "git_commit": lineage.git_commit(root), "run_id": run.run_id,
            "orchestrator": run.orchestrator, "orchestrator_run": run.orchestrator_run,
            "data_hash": ",".join(f"{Path(k).name}:{v}" for k, v in sorted(data_hashes.items()))}
