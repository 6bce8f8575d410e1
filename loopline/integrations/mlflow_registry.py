"""MLflow registry helpers: aliases with a history, champion loading, rollback.

Aliases are the state; every move is also written as a registered-model tag
`loopline.event.<ms>-<id>` so `loopline models list` can show who moved what, when and why.

The registry has no compare-and-set, so every alias move holds the model's lock
(`registry_lock.model_lock`, through `locked`) from reading the aliases to writing the event:
after any interleaving of promotes and rollbacks, the newest event names the current target.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loopline.integrations.mlflow_tags import EVENT_PREFIX, VERIFIED
from loopline.integrations.model_card import ModelCard
from loopline.integrations.registry_lock import LockError, model_lock

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous_champion"
# Where a version's training rows are logged in its run (the drift job's reference).
REFERENCE_DIR = "reference"
LOCK_TIMEOUT_S = 60.0
_EVENT_MS = re.compile(re.escape(EVENT_PREFIX) + r"(\d{13})-")


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why."""


def client(tracking_uri: str, registry_uri: str | None = None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def registry_uri(mlflow_client: Any) -> str:
    """Where the client's aliases live: the URI the model's lock is taken on."""
    uri = getattr(mlflow_client, "_registry_uri", None)
    if not isinstance(uri, str) or not uri:
        raise RegistryError("cannot tell which registry this client writes to, so its alias "
                            "moves cannot be locked; make it with mlflow_registry.client()")
    return uri


@contextlib.contextmanager
def locked(mlflow_client: Any, name: str,
           timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold model `name`'s lock (every process and host sharing the registry takes the same
    one): read aliases, decide and move them inside it. Re-entrant, so the moves below can
    take it themselves and still be called inside it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(model_lock(registry_uri(mlflow_client), name, timeout_s))
        except LockError as exc:
            raise RegistryError(str(exc)) from None
        yield


def mark_verified(mlflow_client: Any, name: str, version: str) -> None:
    """The last tag `registry.promote` writes: the registered copy loaded back and predicted
    what the trained model predicts. Only such a version may take an alias."""
    mlflow_client.set_model_version_tag(name, version, VERIFIED, "true")


def version_for_alias(mlflow_client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def record_event(mlflow_client: Any, name: str, **event: Any) -> dict[str, Any]:
    """Append an event to the model's history. Keys sort in the order events were written:
    the time in ms, but always after the newest event already there (two moves in one
    millisecond, or a clock behind another host's, would otherwise sort at random)."""
    event = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "actor": os.environ.get("USER", "unknown"), **event}
    with locked(mlflow_client, name):
        tags = mlflow_client.get_registered_model(name).tags or {}
        newest = max((int(m.group(1)) for key in tags if (m := _EVENT_MS.match(key))),
                     default=-1)
        ms = max(time.time_ns() // 1_000_000, newest + 1)
        key = f"{EVENT_PREFIX}{ms:013d}-{uuid.uuid4().hex[:6]}"
        mlflow_client.set_registered_model_tag(name, key, json.dumps(event, default=str))
    return event


def history(mlflow_client: Any, name: str) -> list[dict[str, Any]]:
    model = mlflow_client.get_registered_model(name)
    return [json.loads(value) for key, value in sorted(model.tags.items())
            if key.startswith(EVENT_PREFIX)]


def move_alias(mlflow_client: Any, name: str, alias: str, version: str, reason: str,
               **facts: Any) -> str | None:
    """Point `alias` at `version`; return where it pointed before. Recorded in the history,
    under the model's lock."""
    with locked(mlflow_client, name):
        previous = version_for_alias(mlflow_client, name, alias)
        mlflow_client.set_registered_model_alias(name, alias, str(version))
        record_event(mlflow_client, name, alias=alias, version=str(version), previous=previous,
                     reason=reason, **facts)
    return previous


def crown(mlflow_client: Any, name: str, version: str, reason: str,
          **facts: Any) -> str | None:
    """Make `version` the champion; the old champion stays reachable as previous_champion."""
    with locked(mlflow_client, name):
        previous = version_for_alias(mlflow_client, name, CHAMPION)
        if previous == str(version):
            return previous
        if previous is not None:
            mlflow_client.set_registered_model_alias(name, PREVIOUS, previous)
        return move_alias(mlflow_client, name, CHAMPION, version, reason, **facts)


def rollback(mlflow_client: Any, name: str, to_version: str | None = None,
             force: bool = False) -> tuple[str, str]:
    """Move champion back (to the previous champion, or `to_version`); return (from, to).
    Both are read under the model's lock, so a concurrent promote cannot slip in between.
    Like promote, it refuses a version whose registration was never verified (unless forced):
    such a version may not even load."""
    with locked(mlflow_client, name):
        current = version_for_alias(mlflow_client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name} has no champion to roll back")
        target = to_version or version_for_alias(mlflow_client, name, PREVIOUS)
        if target is None:
            raise RegistryError(f"{name} has no previous champion; name a version with --to")
        found = mlflow_client.get_model_version(name, target)  # raises if it does not exist
        verified = ModelCard.from_tags(found.tags or {}).verified
        if not verified and not force:
            raise RegistryError(f"v{target} was never verified (its registration stopped "
                                "before the registered copy was loaded back and checked); "
                                "use --force to roll back to it anyway")
        reason = f"rollback from version {current}" + ("" if verified else " (forced: never "
                                                           "verified)")
        crown(mlflow_client, name, target, reason=reason)
    return current, target


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    created: str
    verdict: str
    metrics: str
    judged_on: str = ""


def versions(mlflow_client: Any, name: str) -> list[VersionRow]:
    # Search results leave aliases out; the registered model has the alias -> version map.
    by_version: dict[str, list[str]] = {}
    for alias, version in (mlflow_client.get_registered_model(name).aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in mlflow_client.search_model_versions(f"name='{name}'"):
        card = ModelCard.from_tags(mv.tags or {})
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(mv.creation_timestamp) / 1000))
        aliases = sorted(by_version.get(str(mv.version), []))
        rows.append(VersionRow(str(mv.version), aliases, created, card.verdict,
                               card.primary_value, card.judged_on_text))
    return sorted(rows, key=lambda r: int(r.version), reverse=True)


URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def point_mlflow_at(tracking_uri: str, registry_uri: str | None = None) -> None:
    """Set MLflow's process-wide URIs without leaking them: `mlflow.set_tracking_uri` also
    exports $MLFLOW_TRACKING_URI, which Loopline reads as the user's override, so a second
    project run in the same process (a test, `dag.test`, a notebook) would write into the
    first project's registry. The variables are put back as they were."""
    import mlflow

    saved = {name: os.environ.get(name) for name in URI_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    if registry_uri:
        mlflow.set_registry_uri(registry_uri)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def load_model(tracking_uri: str, uri: str) -> Any:
    """Load a registered model as its native object (sklearn Pipeline, torch module)."""
    import mlflow

    point_mlflow_at(tracking_uri)
    flavors = mlflow.models.get_model_info(uri).flavors
    if "sklearn" in flavors:
        return mlflow.sklearn.load_model(uri)
    if "pytorch" in flavors:
        return mlflow.pytorch.load_model(uri)
    return mlflow.pyfunc.load_model(uri)
