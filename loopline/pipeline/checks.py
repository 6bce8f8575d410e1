"""Spec checks that need the component contracts: names, inputs, outputs, params, retrain."""

from __future__ import annotations

from pydantic import ValidationError

from loopline.components import registry
from loopline.components.contract import Component
from loopline.spec.errors import SpecProblem
from loopline.spec.hints import did_you_mean
from loopline.spec.load import LoadedSpec, pydantic_problems


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
        for input_name, ref in step.input_refs().items():
            if input_name not in component.inputs:
                problems.append(doc.problem((*base, "inputs", input_name),
                                            f"{component.name} has no input {input_name!r}"
                                            + did_you_mean(input_name, component.inputs)))
            upstream = components.get(ref.step)
            if upstream is not None and ref.output not in upstream.outputs:
                problems.append(doc.problem(
                    (*base, "inputs", input_name),
                    f"step {ref.step!r} ({upstream.name}) has no output {ref.output!r}"
                    + did_you_mean(ref.output, upstream.outputs)
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
                                    + did_you_mean(retrain.step, loaded.spec.steps)))
    elif step is not None and "summary" not in step.outputs:
        problems.append(doc.problem(("retrain", "step"),
                                    f"step {retrain.step!r} ({step.name}) writes no drift "
                                    "summary; name a drift.evidently step"))
    if not loaded.resolve_path(retrain.pipeline).is_file():
        problems.append(doc.problem(("retrain", "pipeline"),
                                    f"{retrain.pipeline} not found under {loaded.project_root}"))
    return problems
