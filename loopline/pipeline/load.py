"""A spec loaded against the component registry: what every layer above calls to get a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.components import registry
from loopline.components.contract import ComponentParams
from loopline.pipeline.checks import component_problems
from loopline.spec.errors import SpecError
from loopline.spec.load import LoadedSpec, load_spec
from loopline.spec.params import overrides_from_values


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> LoadedSpec:
    """Load a spec and check it against its components; raise SpecError with every problem."""
    loaded = load_spec(path, overrides)
    registry.trust_project(loaded.project_root)
    problems = component_problems(loaded)
    if problems:
        raise SpecError(problems)
    return loaded


def load_pipeline_with_values(path: str | Path, values: dict[str, Any] | None) -> LoadedSpec:
    """Load a spec with an orchestrator's run-time param values (Airflow's trigger form, KFP's
    `params` parameter, a pod's LOOPLINE_PARAMS_JSON) applied like `--set`."""
    loaded = load_pipeline(path)
    overrides = overrides_from_values(values or {}, loaded.params.flat)
    return load_pipeline(path, overrides) if overrides else loaded


def step_params(loaded: LoadedSpec, step: str) -> ComponentParams:
    """The step's params validated by its component (call after `load_pipeline`)."""
    component = registry.get(loaded.spec.steps[step].component)
    return component.params.model_validate(loaded.spec.steps[step].params)
