"""From a YAML file to a validated, resolved, immutable spec (structure only, no components)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from loopline.spec import graph
from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.hints import did_you_mean
from loopline.spec.model import PipelineSpec
from loopline.spec.params import Params, load_params, resolve
from loopline.spec.paths import find_project_root, project_path
from loopline.spec.yaml_lines import Loc, LocatedDocument, load_file


@dataclass(frozen=True)
class LoadedSpec:
    """A spec with everything needed to run it: where it lives and what it resolved to."""

    spec: PipelineSpec
    path: Path
    project_root: Path
    doc: LocatedDocument
    params: Params
    params_used: dict[Loc, frozenset[str]]
    resolved: dict[str, Any]

    @property
    def display(self) -> str:
        return self.doc.file

    def step_params_used(self, step: str) -> list[str]:
        """params.yaml keys a step reads, for DVC `params:` and cache keys."""
        keys: set[str] = set()
        for loc, used in self.params_used.items():
            if loc[:2] == ("steps", step):
                keys |= used
        return sorted(keys)

    @property
    def spec_hash(self) -> str:
        """Hash of the resolved spec: same hash, same pipeline."""
        blob = json.dumps(self.resolved, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def resolve_path(self, value: str) -> Path:
        return project_path(value, self.project_root)


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> LoadedSpec:
    """Parse, resolve `${...}` and validate structure; raise SpecError listing every problem."""
    path = Path(path)
    display = display_path(path)
    doc = load_file(path, display)
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a pipeline spec must be a YAML mapping")])
    project_root = find_project_root(path)
    params_name = doc.data.get("params_file", "params.yaml")
    params_path = project_root / str(params_name)
    params = load_params(params_path, display_path(params_path), overrides, str(params_name))
    resolved, used = resolve(doc, params)
    try:
        spec = PipelineSpec.model_validate(resolved)
    except ValidationError as exc:
        raise SpecError(pydantic_problems(exc, doc, PipelineSpec)) from None
    problems = structural_problems(spec, doc)
    if problems:
        raise SpecError(problems)
    frozen_used = {loc: frozenset(keys) for loc, keys in used.items()}
    return LoadedSpec(spec, path.resolve(), project_root, doc, params, frozen_used, resolved)


def pydantic_problems(
    exc: ValidationError, doc: LocatedDocument, model: type[BaseModel], prefix: Loc = ()
) -> list[SpecProblem]:
    """Turn pydantic's errors into located one-liners, with 'did you mean' for unknown keys."""
    problems = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(model, err["loc"][:-1])
            message = "unknown field" + did_you_mean(loc[-1], allowed)
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error",) and not isinstance(
            err["input"], dict | list
        ):
            message = f"{message}, got {err['input']!r}"
        message = message.removeprefix("Value error, ")
        problems.append(doc.problem(loc, message))
    return problems


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at `loc`, walking nested models (dict values skip their key)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is dict or _is_dict_of_model(field.annotation):
            current = _dict_value_model(field.annotation)
            continue
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _is_dict_of_model(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict


def _dict_value_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", ())
    return args[1] if len(args) == 2 else None


def structural_problems(spec: PipelineSpec, doc: LocatedDocument) -> list[SpecProblem]:
    """References to missing steps and cycles; component-level checks live a layer up."""
    problems = []
    names = list(spec.steps)
    for name, step in spec.steps.items():
        for input_name, ref in step.input_refs().items():
            target = ref.step
            if target not in spec.steps:
                problems.append(doc.problem(
                    ("steps", name, "inputs", input_name),
                    f"refers to missing step {target!r}{did_you_mean(target, names)}"))
            elif target == name:
                problems.append(doc.problem(
                    ("steps", name, "inputs", input_name), "a step cannot read its own output"))
        for i, dep in enumerate(step.after):
            if dep not in spec.steps:
                problems.append(doc.problem(
                    ("steps", name, "after", i),
                    f"refers to missing step {dep!r}{did_you_mean(dep, names)}"))
    if not problems and (cycle := graph.find_cycle(spec)):
        problems.append(doc.problem(("steps", cycle[0]), "cycle: " + " -> ".join(cycle)))
    return problems
