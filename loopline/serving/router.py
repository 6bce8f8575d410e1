"""Which loaded version answers a request: the champion, or a rollout's challenger.

Without a rollout, one route: `champion`. A rollout adds the challenger on `canary` with a
`Split`: in canary and A/B mode a key whose bucket (a hash of the rollout id and the key, 0 to
100) falls under the weight is answered by the challenger; in shadow mode the champion
answers every request and those keys are also sent to the challenger after the answer (route
`shadow`). A key keeps its bucket for the whole rollout, so a caller stays on one version
within a step, and a step that raises the weight only moves more keys over, never back.
Routes are swapped whole, so a request in flight keeps the version it started with.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from loopline.ml.routes import CANARY, CHAMPION, SHADOW
from loopline.serving.served_model import ServedModel

__all__ = ["CANARY", "CHAMPION", "SHADOW", "Router", "Split", "bucket"]


@dataclass(frozen=True)
class Split:
    weight: float  # % of keys on the challenger (mirrored in shadow mode)
    mode: str  # canary | shadow | ab
    salt: str  # the rollout's id: buckets are the rollout's own


def bucket(key: str, salt: str) -> float:
    """A key's place in [0, 100): stable across processes and hosts (Python's hash() is
    salted per process, so every worker would route a key differently)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


class Router:
    def __init__(self, champion: ServedModel | None = None) -> None:
        # Routes and split as one tuple, replaced whole: a reader never pairs a split with
        # routes that lack its challenger.
        routes = {} if champion is None else {CHAMPION: champion}
        self._table: tuple[dict[str, ServedModel], Split | None] = (routes, None)
        self._lock = threading.Lock()

    def pick(self, key: str) -> tuple[str, ServedModel]:
        """The route and version that answer the request with this key."""
        routes, split = self._table
        if split is not None and split.mode != "shadow" and bucket(key, split.salt) < split.weight:
            return CANARY, routes[CANARY]
        return CHAMPION, routes[CHAMPION]

    def shadows(self, key: str) -> list[tuple[str, ServedModel]]:
        """Versions that also see this request without answering it."""
        routes, split = self._table
        if split is not None and split.mode == "shadow" and bucket(key, split.salt) < split.weight:
            return [(SHADOW, routes[CANARY])]
        return []

    def swap(self, route: str, model: ServedModel) -> ServedModel | None:
        """Serve `model` on `route` from the next request on; the version it replaces."""
        with self._lock:
            routes, split = self._table
            previous = routes.get(route)
            self._table = ({**routes, route: model}, split)
        return previous

    def set_split(self, challenger: ServedModel, split: Split) -> None:
        """Route `split` of the traffic to `challenger` (the canary route)."""
        with self._lock:
            routes, _ = self._table
            self._table = ({**routes, CANARY: challenger}, split)

    def clear_split(self) -> ServedModel | None:
        """Back to the champion alone; the challenger that was routed to, if any."""
        with self._lock:
            routes = dict(self._table[0])
            challenger = routes.pop(CANARY, None)
            self._table = (routes, None)
        return challenger

    @property
    def split(self) -> Split | None:
        return self._table[1]

    @property
    def ready(self) -> bool:
        return CHAMPION in self._table[0]

    def served(self) -> Mapping[str, ServedModel]:
        return dict(self._table[0])
