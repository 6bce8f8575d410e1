"""What a component promises: its inputs, outputs and parameters, declared without heavy imports.

A component is a plain function `run(ctx, params)`. Its module imports only this file and
pydantic at top level; pandas, scikit-learn, MLflow and friends are imported inside `run`, so
that validating a spec or parsing an Airflow DAG never pays for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

OutputKind = Literal["dataset", "model", "transform", "metrics", "plots", "report", "json"]


class ComponentParams(BaseModel):
    """Base of every component's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Output:
    """A file (or folder) the component writes, named inside the step's folder."""

    filename: str
    kind: OutputKind
    description: str = ""


@dataclass(frozen=True)
class Input:
    description: str = ""
    optional: bool = False


class StepFailed(Exception):
    """A component's own verdict that the pipeline must stop here (e.g. data failed its suite).

    The message is shown to the user as the step's error, without a traceback.
    """


class StepContext(Protocol):
    """What the runtime hands a component. Components depend on this, never on the runtime."""

    pipeline: str
    step: str
    run_id: str
    project_root: Path
    artifacts_root: str  # the spec's artifact root: an absolute folder or an fsspec URI
    tracking_uri: str
    registry_uri: str
    model_name: str | None
    resources: Any

    def input_path(self, name: str) -> Path | None: ...

    def output_path(self, name: str) -> Path: ...

    def log(self, message: str) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def lineage(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class StepResult:
    """Small values a component reports: metrics for trackers, and JSON-able facts for the run."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)


Checker = Callable[[BaseModel, Path], list[tuple[tuple[str | int, ...], str]]]
SourceLister = Callable[[BaseModel, Path], list[str]]
# (loc inside params, metric name) pairs a step's params name.
MetricLister = Callable[[BaseModel], list[tuple[tuple[str | int, ...], str]]]


@dataclass(frozen=True)
class Component:
    """A registered component: contract plus the function that honours it."""

    name: str
    version: str
    description: str
    params: type[ComponentParams]
    run: Callable[[StepContext, Any], StepResult | None]
    inputs: Mapping[str, Input] = field(default_factory=dict)
    outputs: Mapping[str, Output] = field(default_factory=dict)
    # Extra spec checks that need the params (e.g. expressions parse); (loc, message) pairs.
    check: Checker | None = None
    # External data the step reads (paths/URIs), for cache keys and DVC deps.
    sources: SourceLister | None = None
    # Steps that write the registry (need registry.model_name) ...
    touches_registry: bool = False
    # ... or read it (the champion): both fold the registry URI into their cache key.
    reads_registry: bool = False
    # Steps that judge against a registry alias (the gate's champion), named by the params;
    # they record the version judged as the fact `compared_with`. Their cached result is
    # reused only while the alias points at that version or at one the pipeline registered.
    compares_with_alias: Callable[[Any], str] | None = None
    # False for steps whose result depends on the world outside their inputs (whichever
    # version is champion now, the latest scored batches): they run every time.
    cacheable: bool = True
    # Plot definitions for files inside a `plots` output (DVC's x/y/title), by file name;
    # `task: classification|regression` limits one to models of that task.
    plots: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Trainers: the task the step's model solves ("classification", "regression") ...
    task: Callable[[Any], str] | None = None
    # ... and steps that name metrics (gates): checked against that task before anything runs.
    metrics: MetricLister | None = None
