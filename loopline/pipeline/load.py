"""A spec loaded against the component registry: what every layer above calls to get a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.components import registry
from loopline.components.contract import ComponentParams
from loopline.pipeline.checks import component_problems
from loopline.spec.errors import SpecError, SpecProblem
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


def load_pipeline_with_values(path: str | Path, values: dict[str, Any] | None,
                              source: str = "run-time params") -> LoadedSpec:
    """Load a spec with an orchestrator's run-time param values (Airflow's trigger form, KFP's
    `params` parameter, a pod's LOOPLINE_PARAMS_JSON) applied like `--set`."""
    loaded = load_pipeline(path)
    overrides = run_time_overrides(loaded, values, source)
    return load_pipeline(path, overrides) if overrides else loaded


def run_time_overrides(loaded: LoadedSpec, values: Any, source: str) -> list[str]:
    """`--set` overrides from run-time values, refusing the params the spec's `env:` reads:
    pods and KFP tasks got `env:` rendered when the DAG was parsed or the pipeline compiled,
    so changing one per run would switch half a step's settings (the artifact root, say, but
    not the tracking server). They change in params.yaml or the profile's file."""
    overrides = overrides_from_values(values or {}, loaded.params.flat, source)
    rendered = {key for loc, keys in loaded.params_used.items() if loc[:1] == ("env",)
                for key in keys}
    if refused := sorted({o.split("=", 1)[0] for o in overrides} & rendered):
        raise SpecError([SpecProblem(source, 1, key, "read by the spec's env:, which every "
                                     "step got when the DAG or pipeline was built; change it "
                                     "in the params file (or the profile's), not per run")
                         for key in refused])
    return overrides


def step_params(loaded: LoadedSpec, step: str) -> ComponentParams:
    """The step's params validated by its component (call after `load_pipeline`)."""
    component = registry.get(loaded.spec.steps[step].component)
    return component.params.model_validate(loaded.spec.steps[step].params)
