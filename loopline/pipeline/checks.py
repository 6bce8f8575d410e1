"""Spec checks that need the component contracts: names, inputs, outputs, params, retrain."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from loopline.components import registry
from loopline.components.contract import Component
from loopline.ml import metric_names
from loopline.spec import graph
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
        if getattr(params, "device", None) == "cpu" and _requires_gpu(spec.resources(name)):
            problems.append(doc.problem((*base, "params", "device"), "device: cpu contradicts "
                                        "resources.gpu.require (a CPU run is refused)"))
    problems += _metric_problems(loaded, components)
    problems += _name_problems(loaded)
    problems += _retrain_problems(loaded, components)
    problems += _alert_problems(loaded)
    if spec.serve is not None and spec.registry is None:
        problems.append(doc.problem(("serve",), "answers with a registered model: add "
                                    "registry.model_name"))
    if spec.registry is None and any(c.touches_registry for c in components.values()):
        problems.append(doc.problem(("registry",), "a step uses the model registry: "
                                    "add registry.model_name"))
    return problems


def _requires_gpu(resources: object) -> bool:
    gpu = getattr(resources, "gpu", None)
    return bool(gpu is not None and getattr(gpu, "count", 0) > 0 and getattr(gpu, "require",
                                                                             False))


def _metric_problems(loaded: LoadedSpec, components: dict[str, Component]) -> list[SpecProblem]:
    """Metric names (gates, primary_metric) against what the upstream trainer's task computes."""
    problems: list[SpecProblem] = []
    for name, component in components.items():
        if component.metrics is None:
            continue
        try:
            params = component.params.model_validate(loaded.spec.steps[name].params)
        except ValidationError:
            continue  # already reported
        named = component.metrics(params)
        task = step_task(loaded, name, components)
        known = metric_names.BY_TASK.get(task or "", metric_names.ALL)
        for loc, metric in named:
            if metric not in known:
                what = f"a {task} model" if task else "any model"
                problems.append(loaded.doc.problem(
                    ("steps", name, "params", *loc),
                    f"{metric!r} is not a metric of {what}{did_you_mean(metric, known)}; "
                    f"known: {', '.join(known)}"))
    return problems


def step_task(loaded: LoadedSpec, step: str,
              components: dict[str, Component] | None = None) -> str | None:
    """The task (classification, regression) of the model a step works on: the one task its
    upstream trainers declare, or None when there is none or more than one."""
    if components is None:
        components = {name: registry.get(s.component) for name, s in loaded.spec.steps.items()}
    tasks = _upstream_tasks(loaded, components, step)
    return tasks[0] if len(tasks) == 1 else None


def _upstream_tasks(loaded: LoadedSpec, components: dict[str, Component],
                    step: str) -> list[str]:
    """Tasks declared by the trainers a step depends on, directly or not."""
    seen: set[str] = set()
    pending = graph.upstream(loaded.spec, step)
    tasks: list[str] = []
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        component = components.get(current)
        if component is not None and component.task is not None:
            try:
                params = component.params.model_validate(loaded.spec.steps[current].params)
            except ValidationError:
                continue
            tasks.append(component.task(params))
        pending += graph.upstream(loaded.spec, current)
    return sorted(set(tasks))


def _name_problems(loaded: LoadedSpec) -> list[SpecProblem]:
    """Two specs in one pipelines/ folder with the same name would be one Airflow DAG."""
    others = [path for path, name in sibling_names(loaded.path.parent).items()
              if name == loaded.spec.name and path != loaded.path]
    if not others:
        return []
    return [loaded.doc.problem(("name",), f"{loaded.spec.name!r} is also the name of "
                               f"{', '.join(p.name for p in others)}; each spec in "
                               f"{loaded.path.parent.name}/ needs its own (they become DAG ids)")]


def sibling_names(folder: Path) -> dict[Path, str]:
    """`name:` of every spec in a folder, read from the top of each file (no YAML parse: a
    broken or hostile neighbour must not slow down or break this spec's check)."""
    files = tuple((p, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.y*ml"))
                  if p.is_file())
    return _scan_names(files)


_NAME_LINE = re.compile(r"""^name:\s*["']?([A-Za-z0-9_-]+)["']?\s*(?:#.*)?$""", re.MULTILINE)


@lru_cache(maxsize=32)
def _scan_names(files: tuple[tuple[Path, int], ...]) -> dict[Path, str]:
    names = {}
    for path, _mtime in files:
        with path.open("rb") as handle:
            head = handle.read(65_536).decode("utf-8", errors="replace")
        if match := _NAME_LINE.search(head):
            names[path.resolve()] = match.group(1)
    return names


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


def _alert_problems(loaded: LoadedSpec) -> list[SpecProblem]:
    """A route's variable must be a declared secret: pods (Airflow, KFP) get only those, from
    a Kubernetes secret, so an undeclared one would alert locally and stay silent there."""
    alerts, spec = loaded.spec.alerts, loaded.spec
    if alerts is None:
        return []
    return [loaded.doc.problem(("alerts", "routes", index, "secret"),
                               f"{route.secret} is not declared under secrets: (pods get it "
                               "from a Kubernetes secret)")
            for index, route in enumerate(alerts.routes) if route.secret not in spec.secrets]
