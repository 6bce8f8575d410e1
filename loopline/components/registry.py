"""Finds components by name: built-ins by module path, plugins through entry points.

Built-ins are listed as strings so that looking one up imports only its own light module.
A user's package adds components with an entry point in the `loopline.components` group:

    [project.entry-points."loopline.components"]
    "acme.clean" = "acme_ml.clean:COMPONENT"
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from loopline.components.contract import Component
from loopline.spec.hints import did_you_mean

ENTRY_POINT_GROUP = "loopline.components"

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


@cache
def get(name: str) -> Component:
    """A built-in, a plugin, or `package.module:ATTR` for a component not yet packaged."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr or not all(p.isidentifier() for p in
                                                  [*module_name.split("."), attr]):
            raise UnknownComponent(name, [], "expected package.module:ATTR")
        try:
            return _load(name)
        except Exception as exc:
            raise UnknownComponent(name, [], f"{type(exc).__name__}: {exc}".splitlines()[0]) \
                from exc
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
