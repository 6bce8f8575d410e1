"""The champion's Feast features for a request, read from the online store.

The same feature service the version was trained with (its card's Feast recipe), looked up by
the entity keys the request carries. Values per entity are kept `ttl_s` seconds: weather and
carrier rates change hourly and daily, and one lookup then serves every request of a burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Lookup:
    """Per row: feature values (None where the store had none) and the missing names."""

    values: list[dict[str, Any]]
    missing: list[list[str]]
    hits: int
    misses: int


class OnlineFeatures:
    """Lookups of one feature service; `keys` are its join keys, `names` its features."""

    def __init__(self, store: Any, service: str, ttl_s: float) -> None:
        self.store = store
        self.service = store.get_feature_service(service)
        self.service_name = service
        self.keys = tuple(sorted({key for projection in self.service.feature_view_projections
                                  for key in store.get_feature_view(projection.name).join_keys}))
        self.names = tuple(f.name for projection in self.service.feature_view_projections
                           for f in projection.features)
        self.ttl_s = ttl_s
        self._cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def lookup(self, rows: list[Mapping[str, Any]]) -> Lookup:
        """Features for each row's entity keys; one store call for the keys not cached."""
        now = time.monotonic()
        entities = [tuple(row[k] for k in self.keys) for row in rows]
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        with self._lock:
            for entity in set(entities):
                cached = self._cache.get(entity)
                if cached and now - cached[0] < self.ttl_s:
                    found[entity] = cached[1]
        wanted = [e for e in dict.fromkeys(entities) if e not in found]
        if wanted:
            fetched = self._fetch(wanted)
            found.update(fetched)
            if self.ttl_s > 0:
                with self._lock:
                    if len(self._cache) > 100_000:  # bounded: a key scan never eats memory
                        self._cache.clear()
                    self._cache.update({e: (now, v) for e, v in fetched.items()})
        values = [found[e] for e in entities]
        missing = [[n for n in self.names if v.get(n) is None] for v in values]
        misses = sum(1 for e in entities if e in wanted)
        return Lookup(values, missing, len(entities) - misses, misses)

    def _fetch(self, entities: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        rows = [dict(zip(self.keys, e, strict=True)) for e in entities]
        result = self.store.get_online_features(features=self.service,
                                                entity_rows=rows).to_dict()
        return {entity: {name: _plain(result[name][i]) for name in self.names}
                for i, entity in enumerate(entities)}


def _plain(value: Any) -> Any:
    """Feast returns float32 features as Python floats already; NaN counts as missing."""
    if isinstance(value, float) and value != value:
        return None
    return value


def open_online(project_root: Path, recipe: Mapping[str, Any], config: str,
                ttl_s: float) -> OnlineFeatures | None:
    """The version's Feast service on the online store `config` names; None without Feast."""
    if not recipe:
        return None
    from loopline.integrations.feast import open_store
    from loopline.spec.paths import project_path

    store = open_store(project_path(recipe.get("repo", "feature_repo"), project_root),
                       config=config)
    return OnlineFeatures(store, recipe["service"], ttl_s)
