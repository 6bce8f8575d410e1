"""Where a rollout's state lives, and the traffic split servers read from it.

    <artifacts root>/monitoring/<model>/rollout.json             the current (or last) rollout
    <artifacts root>/monitoring/<model>/rollouts/<id>.json|.png  each rollout's record, picture

The controller writes `rollout.json` whole (write, then rename) at every look; servers read
it every `serve.refresh` and route the challenger's share from it, so the file is the one
place the split is decided, on every host that shares the artifact root. A rollback writes
weight 0 here before it touches the registry: traffic is back on the champion first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loopline.integrations.filesystems import filesystem, write_text_whole
from loopline.spec.load import LoadedSpec

STATE_FILE = "rollout.json"
RECORDS = "rollouts"
RUNNING, HELD, PROMOTED, ROLLED_BACK = "running", "held", "promoted", "rolled_back"
ACTIVE = (RUNNING, HELD)


@dataclass(frozen=True)
class Traffic:
    """What a server routes now (and what `loopline compile kserve` renders)."""

    champion: str | None  # version numbers as strings
    canary: str | None  # the challenger while a rollout is active, else None
    weight: int  # 0..100: % of traffic on the challenger (mirrored in shadow mode)
    mode: str  # canary | shadow | ab
    step: int  # index into rollout.steps; -1 without an active rollout
    rollout: str = ""  # the rollout's id: the routing salt


def folder(loaded: LoadedSpec) -> str:
    """Beside the live checks' state: one folder per served model."""
    from loopline.runtime.monitoring import state_folder

    return state_folder(loaded)


def state_uri(loaded: LoadedSpec) -> str:
    return f"{folder(loaded)}/{STATE_FILE}"


def record_uri(loaded: LoadedSpec, rollout_id: str, suffix: str = ".json") -> str:
    return f"{folder(loaded)}/{RECORDS}/{rollout_id}{suffix}"


def read(uri: str) -> dict[str, Any]:
    """The state, {} before the first rollout (or when it cannot be read whole yet)."""
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "r") as handle:
            return dict(json.loads(handle.read()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write(uri: str, state: dict[str, Any]) -> None:
    write_text_whole(uri, json.dumps(state, indent=2, default=str))


def traffic_of(state: dict[str, Any], champion: str | None = None) -> Traffic:
    """The split a state asks for: the challenger's share while active, else none."""
    active = state.get("status") in ACTIVE and state.get("challenger")
    if not active:
        return Traffic(champion, None, 0, str(state.get("mode") or "canary"), -1)
    return Traffic(champion or state.get("champion"), str(state["challenger"]),
                   int(state.get("weight") or 0), str(state.get("mode") or "canary"),
                   int(state.get("step", 0)), str(state.get("id") or ""))
