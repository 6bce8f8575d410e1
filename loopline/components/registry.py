"""Finds components by name: built-ins by module path, plugins through entry points.

Built-ins are listed as strings so that looking one up imports only its own light module.
A user's package adds components with an entry point in the `loopline.components` group:

    [project.entry-points."loopline.components"]
    "acme.clean" = "acme_ml.clean:COMPONENT"

A spec may also name `package.module:ATTR` directly, but only for a module that lives in the
spec's project, in a folder listed in $LOOPLINE_COMPONENT_PATH, or in an installed plugin
distribution: naming any importable module would run its code at `validate-spec` time.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from loopline.components.contract import Component
from loopline.spec.hints import did_you_mean

ENTRY_POINT_GROUP = "loopline.components"
COMPONENT_PATH_ENV = "LOOPLINE_COMPONENT_PATH"
# Folders whose modules a spec may name as `package.module:ATTR` (projects of loaded specs).
_trusted_roots: list[Path] = []

BUILTINS: dict[str, str] = {
    "ingest.table": "loopline.builtin.ingest_table:COMPONENT",
    "validate.expectations": "loopline.builtin.validate_expectations:COMPONENT",
    "features.transform": "loopline.builtin.features_transform:COMPONENT",
    "features.feast": "loopline.builtin.features_feast:COMPONENT",
    "features.materialize": "loopline.builtin.features_materialize:COMPONENT",
    "train.sklearn": "loopline.builtin.train_sklearn:COMPONENT",
    "train.torch": "loopline.builtin.train_torch:COMPONENT",
    "evaluate.gate": "loopline.builtin.evaluate_gate:COMPONENT",
    "registry.promote": "loopline.builtin.registry_promote:COMPONENT",
    "predict.batch": "loopline.builtin.predict_batch:COMPONENT",
    "drift.evidently": "loopline.builtin.drift_evidently:COMPONENT",
}


class UnknownComponent(LookupError):
    def __init__(self, name: str, known: list[str], reason: str = "") -> None:
        detail = f" ({reason})" if reason else did_you_mean(name, known)
        super().__init__(f"unknown component {name!r}{detail}")


def _load(target: str) -> Component:
    module_name, _, attr = target.partition(":")
    component = getattr(importlib.import_module(module_name), attr)
    if not isinstance(component, Component):
        raise TypeError(f"{target} is not a loopline Component")
    return component


@cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted({*BUILTINS, *_plugins()})


def trust_project(root: Path) -> None:
    """Let specs of this project name its own modules as components (the loader calls it)."""
    root = root.resolve()
    if root not in _trusted_roots:
        _trusted_roots.append(root)


def _allowed_roots() -> list[Path]:
    extra = [Path(p).resolve() for p in os.environ.get(COMPONENT_PATH_ENV, "").split(os.pathsep)
             if p]
    return [*_trusted_roots, *extra]


def _plugin_packages() -> set[str]:
    """Top-level packages of the distributions that declare loopline components."""
    return {"loopline", *(ep.value.split(":")[0].split(".")[0]
                          for ep in entry_points(group=ENTRY_POINT_GROUP))}


def _check_importable(module_name: str) -> None:
    """Refuse a module outside the project, $LOOPLINE_COMPONENT_PATH and plugin packages,
    without running any of its code (find_spec of a top-level name imports nothing)."""
    top = module_name.split(".")[0]
    if top in _plugin_packages():
        return
    for root in _allowed_roots():
        if (root / top).is_dir() or (root / f"{top}.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            spec = importlib.util.find_spec(top)
            origin = Path(spec.origin).resolve() if spec and spec.origin else None
            if origin is not None and origin.is_relative_to(root):
                return
            raise ValueError(f"module {top!r} in {root} is shadowed by {origin}")
    where = ", ".join(str(r) for r in _allowed_roots()) or "no project loaded"
    raise ValueError(f"module {top!r} is not in the project ({where}) nor an installed "
                     f"loopline plugin; put it in the project, add its folder to "
                     f"${COMPONENT_PATH_ENV}, or register it in the {ENTRY_POINT_GROUP!r} "
                     "entry-point group")


@cache
def _get_by_import_path(name: str, roots: tuple[Path, ...]) -> Component:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in
                                              [*module_name.split("."), attr]):
        raise UnknownComponent(name, [], "expected package.module:ATTR")
    try:
        _check_importable(module_name)
        return _load(name)
    except Exception as exc:  # a user's module may fail in any way; one located line
        raise UnknownComponent(name, [], f"{type(exc).__name__}: {exc}".splitlines()[0]) \
            from exc


def get(name: str) -> Component:
    """A built-in, a plugin, or `package.module:ATTR` for a component not yet packaged."""
    if ":" in name:
        return _get_by_import_path(name, tuple(_allowed_roots()))
    return _get_named(name)


@cache
def _get_named(name: str) -> Component:
    target = BUILTINS.get(name) or _plugins().get(name)
    if target is None:
        raise UnknownComponent(name, names())
    return _load(target)


@cache
def code_version(name: str) -> str:
    """Declared version plus a hash of the component's module and the package modules it
    imports (transitively, read from source), so editing a helper invalidates caches too."""
    component = get(name)
    root_package = component.run.__module__.split(".")[0]
    digest = hashlib.sha256()
    for module_file in _module_closure(component.run.__module__, root_package):
        digest.update(module_file.read_bytes())
    return f"{component.version}+{digest.hexdigest()[:12]}"


def _module_closure(module_name: str, root_package: str) -> list[Path]:
    """Source files of a module and of the same-package modules it imports, by path only
    (importing them to find out would pull in pandas and friends)."""
    root_spec = importlib.util.find_spec(root_package)
    if root_spec is None or not root_spec.submodule_search_locations:
        return []
    base = Path(next(iter(root_spec.submodule_search_locations))).parent
    seen: dict[str, Path] = {}
    pending = [module_name]
    while pending:
        name = pending.pop()
        if name in seen or (path := _module_file(base, name)) is None:
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            pending += [t for t in targets if t.split(".")[0] == root_package]
    return [seen[k] for k in sorted(seen)]


def _module_file(base: Path, name: str) -> Path | None:
    """`a.b.c` -> base/a/b/c.py or base/a/b/c/__init__.py; None for attributes."""
    stem = base.joinpath(*name.split("."))
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None
