"""Profiles: one spec, several platforms. `LOOPLINE_PROFILE=production` lays
`params.production.yaml` over `params.yaml`, so the values that say where things live (the
artifact root, the Feast config, the MLflow server) change while the spec stays as written.

An overlay may only change keys params.yaml already has: a misspelt key that silently kept
the local value would send production artifacts to a laptop folder.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.hints import did_you_mean
from loopline.spec.yaml_lines import LocatedDocument

PROFILE_ENV = "LOOPLINE_PROFILE"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def active_profile() -> str | None:
    """The profile named by $LOOPLINE_PROFILE (empty: none); a bad name is a spec error."""
    name = os.environ.get(PROFILE_ENV, "").strip()
    if not name:
        return None
    if not _NAME.match(name):
        raise SpecError([SpecProblem(PROFILE_ENV, 1, "", f"{name[:60]!r} is not a profile "
                                     "name (lower-case letters, digits, - and _)")])
    return name


@contextlib.contextmanager
def no_profile() -> Iterator[None]:
    """Load specs as written, without the shell's profile (a fresh skeleton has no profile
    files yet)."""
    saved = os.environ.pop(PROFILE_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[PROFILE_ENV] = saved


def profile_file(params_path: Path, profile: str) -> Path:
    """`params.yaml` + `production` -> `params.production.yaml`, beside it."""
    return params_path.with_name(f"{params_path.stem}.{profile}{params_path.suffix}")


def overlay(base: dict[str, Any], doc: LocatedDocument, base_name: str) -> dict[str, Any]:
    """`base` (changed in place and returned) with the overlay document's values laid over
    it, key by key; every key it names must exist in `base` with the same shape."""
    if doc.data is None:  # an empty file changes nothing
        return base
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a profile file must be a mapping")])
    problems: list[SpecProblem] = []

    def merge(into: dict[str, Any], values: dict[str, Any], loc: tuple[str, ...]) -> None:
        for key, value in values.items():
            here = (*loc, str(key))
            if key not in into:
                problems.append(doc.problem(here, f"not a key of {base_name}"
                                            + did_you_mean(str(key), list(into))))
            elif isinstance(value, dict) and isinstance(into[key], dict):
                merge(into[key], value, here)
            elif value is None and isinstance(into[key], dict):
                continue  # `platform:` with nothing under it changes nothing
            elif isinstance(value, dict) or isinstance(into[key], dict):
                kind = "a section" if isinstance(into[key], dict) else "a value"
                problems.append(doc.problem(here, f"is {kind} in {base_name}; a profile "
                                            "changes values, never the shape"))
            else:
                into[key] = value

    merge(base, doc.data, ())
    if problems:
        raise SpecError(problems)
    return base
