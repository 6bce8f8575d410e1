"""A Feast repo as Loopline uses it: names found by reading source (no 5 s Feast import at
spec-check time), objects loaded from the repo's own modules, applied from Python."""

from __future__ import annotations

import ast
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

FEAST_KINDS = {"FeatureService": "service", "FeatureView": "view",
               "BatchFeatureView": "view", "StreamFeatureView": "view",
               "OnDemandFeatureView": "view", "Entity": "entity"}


def declared_names(repo: Path) -> dict[str, set[str]]:
    """`{"service": {...}, "view": {...}, "entity": {...}}` from `Kind(name="...")` calls."""
    files = tuple((p, p.stat().st_mtime_ns) for p in sorted(repo.glob("*.py")))
    return _scan(files)


@lru_cache(maxsize=32)
def _scan(files: tuple[tuple[Path, int], ...]) -> dict[str, set[str]]:
    """Parsed once per version of the repo's files (Airflow re-parses every spec often)."""
    found: dict[str, set[str]] = {"service": set(), "view": set(), "entity": set()}
    for path, _mtime in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            kind = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else None
            if kind not in FEAST_KINDS:
                continue
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    found[FEAST_KINDS[kind]].add(str(keyword.value.value))
    return found


def repo_objects(repo: Path) -> list[Any]:
    """Entities, views and services defined by the repo's modules (imported by path)."""
    from feast import Entity, FeatureService, FeatureView

    objects: dict[tuple[str, str], Any] = {}
    for path in sorted(repo.glob("*.py")):
        name = f"_loopline_feast_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if isinstance(value, Entity | FeatureView | FeatureService):
                objects[type(value).__name__, value.name] = value
    return list(objects.values())


def open_store(repo: Path, apply: bool = True) -> Any:
    """A FeatureStore for the repo, with its definitions applied (0.03 s vs 9-14 s for the CLI)."""
    import logging

    from feast import FeatureStore

    logging.getLogger("feast").setLevel(logging.WARNING)
    (repo / "data").mkdir(exist_ok=True)
    store = FeatureStore(repo_path=str(repo))
    if apply:
        store.apply(repo_objects(repo))
    return store
