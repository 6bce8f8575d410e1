"""Which loaded version answers a request: the seam progressive rollout plugs into.

Today one route, `champion`. A rollout adds a `canary` that takes a share of the keys
(sticky: the same key always reaches the same version within a step) and `shadow` versions
that see a copy of the traffic and never answer. Routes are swapped whole, so a request in
flight keeps the version it started with and the next one sees the new version.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from loopline.serving.served_model import ServedModel

CHAMPION = "champion"


class Router:
    def __init__(self, champion: ServedModel | None = None) -> None:
        self._routes: dict[str, ServedModel] = {} if champion is None else {CHAMPION: champion}
        self._lock = threading.Lock()

    def pick(self, key: str) -> tuple[str, ServedModel]:
        """The route and version that answer the request with this key."""
        routes = self._routes
        return CHAMPION, routes[CHAMPION]

    def shadows(self, key: str) -> list[tuple[str, ServedModel]]:
        """Versions that also see this request without answering it (none without a rollout)."""
        return []

    def swap(self, route: str, model: ServedModel) -> ServedModel | None:
        """Serve `model` on `route` from the next request on; the version it replaces."""
        with self._lock:
            routes = dict(self._routes)
            previous = routes.get(route)
            routes[route] = model
            self._routes = routes  # one reference assignment: readers see old or new, whole
        return previous

    @property
    def ready(self) -> bool:
        return CHAMPION in self._routes

    def served(self) -> Mapping[str, ServedModel]:
        return dict(self._routes)
