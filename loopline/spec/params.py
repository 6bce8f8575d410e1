"""`${section.key}` references into params.yaml, and `--set` overrides of its values."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.hints import did_you_mean
from loopline.spec.profile import PROFILE_ENV, active_profile, overlay, profile_file
from loopline.spec.yaml_lines import Loc, LocatedDocument, load_file, load_text

_REF = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Params:
    """The values of params.yaml after overrides, flattened to dotted keys for lookups."""

    values: dict[str, Any]
    file: str  # as named in the spec (params.yaml), for messages
    profile: str | None = None  # $LOOPLINE_PROFILE, whose file lies over params.yaml
    flat: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.flat = dict(flatten(self.values))

    def get(self, key: str) -> Any:
        return self.flat[key]


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            items.append((dotted, value))
            items.extend(flatten(value, dotted))
    return items


def load_params(path: Path, display: str, overrides: list[str] | None = None,
                name: str = "params.yaml") -> Params:
    """Read params.yaml (absent means empty), lay the active profile's file over it
    (spec.profile), and apply `section.key=value` overrides."""
    values = copy.deepcopy(_read_params(path, display, _stamp(path)))
    profile = active_profile()
    if profile:
        overlay_path = profile_file(path, profile)
        if _stamp(overlay_path) == (0, 0):
            raise SpecError([SpecProblem(PROFILE_ENV, 1, "", f"profile {profile!r}: "
                                         f"{profile_file(Path(display), profile)} not found")])
        overlay_doc = load_file(overlay_path, profile_file(Path(display), profile).as_posix())
        values = overlay(values, overlay_doc, name)
    params = Params(values, name, profile)
    problems = [p for o in overrides or [] if (p := _apply_override(params, o))]
    if problems:
        raise SpecError(problems)
    params.__post_init__()
    return params


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    except (OSError, ValueError):  # a NUL byte, a name too long: reading it will say so
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _read_params(path: Path, display: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """Parsed once per file version: many specs share one params.yaml (Airflow parses all)."""
    if stamp == (0, 0):
        return {}
    doc = load_file(path, display)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "params file must be a mapping")])
    return doc.data or {}


def _apply_override(params: Params, override: str) -> SpecProblem | None:
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        return SpecProblem("--set", 1, override, "expected section.key=value")
    if key not in params.flat:
        hint = did_you_mean(key, params.flat)
        return SpecProblem("--set", 1, key, f"not a key of {params.file}{hint}")
    try:
        value = load_text(raw, "--set").data if raw.strip() else ""
    except SpecError as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        return SpecProblem("--set", 1, key, f"cannot read the value {shown!r}: "
                           + exc.problems[0].message[:200])
    *parents, leaf = key.split(".")
    node = params.values
    for part in parents:
        node = node[part]
    node[leaf] = value
    return None


def values_from_json(text: str, source: str) -> Any:
    """Run-time param values given as JSON text (LOOPLINE_PARAMS_JSON, `submit --params`)."""
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpecError([SpecProblem(source, 1, "", f"not JSON: {exc}")]) from None


def overrides_from_values(values: Any, known: dict[str, Any],
                          source: str = "run-time params") -> list[str]:
    """Run-time param values (sections, or dotted keys) as `--set` overrides: every leaf that
    params.yaml has and the run changed. Orchestrators pass these from trigger forms. A key
    params.yaml lacks is an error: a misspelt override silently ignored trains the wrong model."""
    import json

    if not isinstance(values, dict):
        raise SpecError([SpecProblem(source, 1, "", "expected a JSON object of params.yaml "
                                     'sections, e.g. {"train": {"max_iter": 300}}')])
    leaves = {key: value for key, value in flatten(values) if not isinstance(value, dict)}
    if unknown := sorted(key for key in leaves if key not in known):
        raise SpecError([SpecProblem(source, 1, key, "not a key of params.yaml"
                                     + did_you_mean(key, known)) for key in unknown])
    return [f"{key}={json.dumps(value)}" for key, value in sorted(leaves.items())
            if value != known[key]]


def resolve(doc: LocatedDocument, params: Params) -> tuple[Any, dict[Loc, set[str]]]:
    """Replace every reference in the spec; return the data and which keys each spot used."""
    problems: list[SpecProblem] = []
    used: dict[Loc, set[str]] = {}

    def substitute(value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            return {k: substitute(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        refs = _REF.findall(value)
        for key in refs:
            if key not in params.flat:
                hint = did_you_mean(key, params.flat)
                problems.append(doc.problem(loc, f"${{{key}}} not found in {params.file}{hint}"))
                return value
            used.setdefault(loc, set()).add(key)
        whole = _REF.fullmatch(value)
        if whole:  # a lone reference keeps its type (int, list, mapping)
            return params.get(whole.group(1))
        return _REF.sub(lambda m: str(params.get(m.group(1))), value)

    resolved = substitute(doc.data, ())
    if problems:
        raise SpecError(problems)
    return resolved, used
