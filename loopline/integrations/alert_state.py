"""Who was told what, and when: `<artifacts root>/alerts/<model>/state.json`.

One small JSON file per model, so every process that reaches the artifact root (a local run,
Airflow workers, KFP pods, model servers) shares one memory of what was sent:

    {"sent": {"<route>|<kind>|<key>": epoch},                  # throttle
     "open": {"<route>|<family>|<key>": {"since": epoch, "kind": ...}}}   # incidents

On a local disk the read-decide-write is serialised by an flock and the file replaced by a
rename; on an object store the object is put whole (readers never see half of it) and two
writers racing within the same second may both send: accepted, since a duplicate alert is
better than a lost one. Nothing here ever blocks an alert: an unreadable state means sending
without de-duplication, and saying so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loopline.integrations.filesystems import filesystem, is_object_store, write_text_whole

FILE = "state.json"


class _Event(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def resolve(self) -> bool: ...

    @property
    def family(self) -> str: ...


def sent_key(route: str, ev: _Event) -> str:
    return f"{route}|{ev.kind}|{ev.key}"


def incident_key(route: str, ev: _Event) -> str:
    return f"{route}|{ev.family}|{ev.key}"


def empty() -> dict[str, Any]:
    return {"sent": {}, "open": {}}


@dataclass
class Session:
    """The state while it is held (None: unavailable) and what went wrong reading or
    writing it, as lines to report."""

    state: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def claiming(folder: str | None) -> Iterator[Session]:
    """Hold the state of `folder` (None: no state) for a read-decide-write; written back
    when it changed."""
    if folder is None:
        yield Session(None)
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_locked(folder))
            session = Session(*_read(folder))
        except Exception as exc:  # noqa: BLE001 - alerts go out without de-duplication
            yield Session(None, [f"alert state {folder} unreadable ({type(exc).__name__}: "
                                 f"{exc}); sent without de-duplication"])
            return
        before = json.dumps(session.state, sort_keys=True)
        yield session
        if session.state is not None and json.dumps(session.state, sort_keys=True) != before:
            try:
                _write(folder, session.state)
            except Exception as exc:  # noqa: BLE001 - the alert itself went out
                session.problems.append(f"alert state {folder} not saved "
                                        f"({type(exc).__name__}: {exc})")


Undo = dict[str, tuple[str, Any]]


def claim(state: dict[str, Any], route: str, ev: _Event, now: float, throttle_s: float,
          opens: bool) -> Undo:
    """Mark `ev` as sent on `route` before sending it (another process then holds back),
    opening an incident (`opens`) or closing one (a resolve); returns what `release` needs
    to take the claim back. Throttle entries older than the throttle go."""
    sent = state["sent"]
    for key in [k for k, at in sent.items() if now - at >= throttle_s]:
        del sent[key]
    undo: Undo = {"sent": (sent_key(route, ev), sent.get(sent_key(route, ev)))}
    sent[sent_key(route, ev)] = now
    incident = incident_key(route, ev)
    undo["open"] = (incident, state["open"].get(incident))
    if ev.resolve:
        state["open"].pop(incident, None)
    elif opens:
        state["open"][incident] = {"since": now, "kind": ev.kind}
    return undo


def release(state: dict[str, Any], undo: Undo) -> None:
    """The delivery failed: as if it had never been claimed, so the next event retries."""
    for table, (key, previous) in undo.items():
        if previous is None:
            state[table].pop(key, None)
        else:
            state[table][key] = previous


@contextlib.contextmanager
def _locked(folder: str) -> Iterator[None]:
    if is_object_store(folder):
        yield
        return
    import fcntl

    path = Path(filesystem(folder)[1])
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(folder: str) -> tuple[dict[str, Any], list[str]]:
    fs, path = filesystem(folder)
    try:
        data = json.loads(fs.cat_file(f"{path}/{FILE}"))
    except FileNotFoundError:
        return empty(), []
    except json.JSONDecodeError:
        return empty(), [f"alert state {folder}/{FILE} was not JSON; started afresh"]
    if not (isinstance(data, dict) and isinstance(data.get("sent"), dict)
            and isinstance(data.get("open"), dict)):
        return empty(), [f"alert state {folder}/{FILE} had another shape; started afresh"]
    return data, []


def _write(folder: str, state: dict[str, Any]) -> None:
    text = json.dumps(state, indent=1, sort_keys=True)
    write_text_whole(f"{folder.rstrip('/')}/{FILE}", text)
