"""Spec checks that need the component contracts: names, inputs, outputs and params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loopline.components import registry
from loopline.components.contract import Component, ComponentParams
from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.load import LoadedSpec, _suggest, load_spec, pydantic_problems
from loopline.spec.params import overrides_from_values


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> LoadedSpec:
    """Load a spec and check it against its components; raise SpecError with every problem."""
    loaded = load_spec(path, overrides)
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


def component_problems(loaded: LoadedSpec) -> list[SpecProblem]:
    spec, doc = loaded.spec, loaded.doc
    problems: list[SpecProblem] = []
    components: dict[str, Component] = {}
    for name, step in spec.steps.items():
        try:
            components[name] = registry.get(step.component)
        except registry.UnknownComponent as exc:
            problems.append(doc.problem(("steps", name, "component"), str(exc)))
    for name, step in spec.steps.items():
        component = components.get(name)
        if component is None:
            continue
        base = ("steps", name)
        for input_name, ref in step.inputs.items():
            if input_name not in component.inputs:
                problems.append(doc.problem((*base, "inputs", input_name),
                                            f"{component.name} has no input {input_name!r}"
                                            + _suggest(input_name, list(component.inputs))))
            target, output = ref.split(".")
            upstream = components.get(target)
            if upstream is not None and output not in upstream.outputs:
                problems.append(doc.problem(
                    (*base, "inputs", input_name),
                    f"step {target!r} ({upstream.name}) has no output {output!r}"
                    + _suggest(output, list(upstream.outputs))
                    + f"; outputs: {', '.join(upstream.outputs)}"))
        for input_name, contract in component.inputs.items():
            if not contract.optional and input_name not in step.inputs:
                problems.append(doc.problem((*base, "inputs"),
                                            f"{component.name} needs input {input_name!r}"))
        try:
            params = component.params.model_validate(step.params)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, doc, component.params, (*base, "params")))
            continue
        if component.check is not None:
            for loc, message in component.check(params, loaded.project_root):
                problems.append(doc.problem((*base, "params", *loc), message))
    problems += _retrain_problems(loaded, components)
    if spec.registry is None and any(c.touches_registry for c in components.values()):
        problems.append(doc.problem(("registry",), "a step uses the model registry: "
                                    "add registry.model_name"))
    return problems


def _retrain_problems(loaded: LoadedSpec, components: dict[str, Component]) -> list[SpecProblem]:
    retrain, doc = loaded.spec.retrain, loaded.doc
    if retrain is None:
        return []
    problems = []
    if loaded.spec.registry is None:
        problems.append(doc.problem(("retrain",), "drift is judged against the registry's "
                                    "champion: add registry.model_name"))
    step = components.get(retrain.step)
    if retrain.step not in loaded.spec.steps:
        problems.append(doc.problem(("retrain", "step"), f"no step {retrain.step!r}"
                                    + _suggest(retrain.step, list(loaded.spec.steps))))
    elif step is not None and "summary" not in step.outputs:
        problems.append(doc.problem(("retrain", "step"),
                                    f"step {retrain.step!r} ({step.name}) writes no drift "
                                    "summary; name a drift.evidently step"))
    if not (loaded.project_root / retrain.pipeline).is_file():
        problems.append(doc.problem(("retrain", "pipeline"),
                                    f"{retrain.pipeline} not found under {loaded.project_root}"))
    return problems
