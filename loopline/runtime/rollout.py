"""The rollout controller: one look at a rollout, and what it does about it.

A rollout begins when the registry's `canary` alias points at a version that is not the
champion (`registry.promote` with `strategy: canary`, or `loopline rollout start`). Each look
(`loopline rollout evaluate`, `watch`, an Airflow sensor poke, a KFP recurring run) reads the
prediction log since the rollout began, joins the labels `loopline feedback` kept, asks
`ml.rollout.decide`, and acts: wait, advance a step, hold for a person, promote, roll back.

Every decision is a history event in the registry (kind `rollout`, beside the alias moves;
`loopline models list` shows them) and lands in the rollout's record and picture; a rollback
or a promotion also raises an alert. One controller acts per model: a look holds the model's
controller lock (`registry_lock`, the same machinery as alias moves), and a second controller
is told who holds it instead of acting too. All state is in `rollout.json`, so a controller
killed mid-step is resumed by the next one from the recorded step and its start time.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from loopline.integrations import prediction_labels, prediction_log
from loopline.integrations.registry_lock import LockTimeout, model_lock, model_lock_depth
from loopline.runtime import rollout_state as rs
from loopline.runtime.alerting import emit
from loopline.runtime.environment import applied, step_environment
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location
from loopline.spec.rollout import RolloutSpec

CANARY = "canary"
EVENT_KIND = "rollout"
HOLDER_FILE = "rollout-controller.json"  # who holds the watcher lock, for the one refused
LOOK_WAIT_S = 60.0  # a person's command waits this long for a look in progress
MAX_LOOKS = 400  # looks kept in the state (decisions are always kept)
Traffic = rs.Traffic


class RolloutError(ValueError):
    """A rollout command that cannot be done; the message says why."""


class ControllerBusy(RolloutError):
    """Another controller holds this model's rollout."""


def policy(loaded: LoadedSpec) -> RolloutSpec:
    if loaded.spec.rollout is None:
        raise RolloutError(f"{loaded.display} has no `rollout:` block; add one (docs/rollout.md)")
    return loaded.spec.rollout


def _name(loaded: LoadedSpec) -> str:
    if loaded.spec.registry is None:
        raise RolloutError(f"{loaded.display} has no registry.model_name")
    return loaded.spec.registry.model_name


def _uris(loaded: LoadedSpec) -> tuple[str, str]:
    from loopline.runtime.tracking import resolve_uris

    return resolve_uris(loaded.spec, loaded.project_root)


def alias_version_of(loaded: LoadedSpec, alias: str) -> str | None:
    """The version `alias` of the spec's model points at now (None: none, or no registry)."""
    from loopline.integrations.registry_peek import alias_version

    return alias_version(_uris(loaded)[1], _name(loaded), alias) or None


def traffic(loaded: LoadedSpec) -> Traffic:
    """The split the servers route now: the recorded rollout's, with the registry's champion."""
    return rs.traffic_of(rs.read(rs.state_uri(loaded)), alias_version_of(loaded, "champion"))


@contextlib.contextmanager
def watching(loaded: LoadedSpec) -> Iterator[None]:
    """Be the model's one automatic controller (`watch` for its life, a cron or orchestrator
    look for one look), or raise ControllerBusy naming the one that is. A person's command
    does not need it: `abort` works while a watcher runs."""
    name = _name(loaded)
    holder_uri = f"{rs.folder(loaded)}/{HOLDER_FILE}"
    try:
        with model_lock(_uris(loaded)[1], f"{name}#rollout-watcher", 0):
            if model_lock_depth(_uris(loaded)[1], f"{name}#rollout-watcher") == 1:
                rs.write(holder_uri, {"host": socket.gethostname(), "pid": os.getpid(),
                                      "since": datetime.now(UTC).isoformat()})
            yield
    except LockTimeout:
        holder = rs.read(holder_uri)
        who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}" \
            if holder else "another process"
        raise ControllerBusy(f"another controller ({who}) is acting on {name}'s rollout; this "
                             "one does nothing") from None


@contextlib.contextmanager
def _deciding(loaded: LoadedSpec) -> Iterator[None]:
    """One look at a time, whoever looks (a watcher, a cron look, a person's command)."""
    try:
        with model_lock(_uris(loaded)[1], f"{_name(loaded)}#rollout-look", LOOK_WAIT_S):
            yield
    except LockTimeout as exc:
        raise ControllerBusy(f"{exc}; a look at {_name(loaded)}'s rollout is stuck") from None


def evaluate(loaded: LoadedSpec, now: datetime | None = None, *, act: bool = True,
             command: str | None = None) -> dict[str, Any]:
    """One look; with `act`, do what it decides (or what `command` says: advance, promote,
    abort). Returns the state after it, with `decision` for this look."""
    with applied(step_environment(loaded)):
        if not act:
            return _look(loaded, _now(now), act=False, command=None)
        with contextlib.ExitStack() as held:
            if command is None:  # an automatic look: only the one controller makes them
                held.enter_context(watching(loaded))
            held.enter_context(_deciding(loaded))
            return _look(loaded, _now(now), act=True, command=command)


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _look(loaded: LoadedSpec, now: datetime, act: bool, command: str | None) -> dict[str, Any]:
    spec = policy(loaded)
    uri = rs.state_uri(loaded)
    state = rs.read(uri)
    canary, champion = alias_version_of(loaded, CANARY), alias_version_of(loaded, "champion")
    if act:
        state, canary = _reconcile(loaded, state, canary, champion, now)
    elif state.get("status") in rs.ACTIVE and state.get("challenger") != canary:
        return {**state, "note": "the canary alias no longer names this rollout's "
                                 f"challenger (now {canary or 'none'})"}
    if state.get("status") not in rs.ACTIVE:
        if not canary or canary == champion:
            if act and canary == champion and canary:
                _drop_canary(loaded, canary)  # a canary that is already the champion
            if command:
                raise RolloutError(f"{_name(loaded)} has no rollout running; `loopline "
                                   "rollout start` or a promote with strategy: canary begins one")
            return {**state, "status": state.get("status") or "idle", "decision": None}
        if not champion:
            raise RolloutError(f"{_name(loaded)} has a canary (v{canary}) but no champion to "
                               "compare it with; promote it with `loopline models promote`")
        if not act:
            return {"status": "starting", "challenger": canary, "champion": champion}
        state = _begin(loaded, spec, canary, champion, now)
    frame = _log(loaded, datetime.fromisoformat(state["started_at"]), now)
    decision = _decide(spec, state, frame, now, (state["task"], state["positive"]))
    look = {"time": now.isoformat(), "step": state["step"], "weight": state["weight"],
            **decision.to_json()}
    if command:
        look.update(_forced(spec, state, command))
    state["last_look"] = look
    if decision.metric:
        state["metric_p"] = decision.metric["p_value"]
    if not act:
        return {**state, "decision": look}
    return _act(loaded, spec, state, look, now)


def _reconcile(loaded: LoadedSpec, state: dict[str, Any], canary: str | None,
               champion: str | None, now: datetime) -> tuple[dict[str, Any], str | None]:
    """Finish what a controller killed half-way left, and end a rollout the registry moved
    on from. Returns the state and the canary alias after it."""
    status, challenger = state.get("status"), state.get("challenger")
    if status in rs.ACTIVE and challenger and champion == challenger:
        # Crowned, then killed before the state said so: the promotion stands.
        state = _end(loaded, state, now, rs.PROMOTED, "promoted (finished after an "
                     "interrupted controller)", None)
        return state, alias_version_of(loaded, CANARY)
    if status == rs.ROLLED_BACK and challenger and canary == challenger:
        _drop_canary(loaded, canary)  # rolled back, then killed before the alias went
        return state, None
    if status in rs.ACTIVE and challenger != canary:
        # Moved by a person or a newer training run: a new canary starts its own rollout
        # below, so the alias stays where it was put.
        state = _end(loaded, state, now, rs.ROLLED_BACK, "the canary alias moved to "
                     f"{'v' + canary if canary else 'none'}; champion kept", None,
                     drop_alias=False)
    elif status in rs.ACTIVE and champion != state.get("champion"):
        state = _end(loaded, state, now, rs.ROLLED_BACK, f"the champion moved to "
                     f"v{champion} during the rollout (compared with v{state['champion']}); "
                     "a new rollout compares with the new champion", None, drop_alias=False)
    return state, canary


def _decide(spec: RolloutSpec, state: dict[str, Any], frame: Any, now: datetime,
            task: tuple[str, Any]) -> Any:
    import pandas as pd

    from loopline.ml import rollout as ml

    step_start = datetime.fromisoformat(state["step_started_at"])
    starts = state.get("step_starts") or [state["started_at"]]
    return ml.decide(spec, champion=ml.rows_of(frame, state["champion"], answered=True),
                     challenger=ml.rows_of(frame, state["challenger"]),
                     step_starts=[pd.Timestamp(s) for s in starts],
                     champion_version=state["champion"],
                     challenger_version=state["challenger"],
                     step_age_s=(now - step_start).total_seconds(), task=task[0],
                     positive=task[1], previous_p=float(state.get("metric_p", 1.0)))


def _forced(spec: RolloutSpec, state: dict[str, Any], command: str) -> dict[str, Any]:
    """A person's command overrides the look's own decision (recorded as such)."""
    last = state["step"] == len(spec.steps) - 1
    action = {"abort": "rollback", "promote": "promote",
              "advance": "promote" if last else "advance"}[command]
    return {"action": action, "reason": f"{command} by {os.environ.get('USER', 'a person')} "
            f"(the gates said: {state.get('last_look', {}).get('reason', '-')})",
            "manual": True}


def _act(loaded: LoadedSpec, spec: RolloutSpec, state: dict[str, Any], look: dict[str, Any],
         now: datetime) -> dict[str, Any]:
    action = look["action"]
    if state["status"] == rs.HELD and action == "promote" and not look.get("manual"):
        action = "hold"  # held for a person: only a person promotes it now
    state["controller"] = {"host": socket.gethostname(), "pid": os.getpid(),
                           "at": now.isoformat()}
    if action == "rollback":
        return _end(loaded, state, now, rs.ROLLED_BACK, look["reason"], look)
    if action == "promote":
        return _end(loaded, state, now, rs.PROMOTED, look["reason"], look)
    if action == "advance":
        _decided(state, look)
        state["step"] += 1
        state["weight"] = spec.steps[state["step"]]
        state["step_started_at"] = now.isoformat()
        state.setdefault("step_starts", [state["started_at"]]).append(now.isoformat())
        _record(loaded, state, "advanced", look)
    elif action == "hold" and state["status"] != rs.HELD:
        _decided(state, look)
        state["status"] = rs.HELD
        _record(loaded, state, "held", look)
    else:
        looks = state.setdefault("looks", [])
        looks.append(_brief(look))
        del looks[:-MAX_LOOKS]
    rs.write(rs.state_uri(loaded), state)
    return {**state, "decision": look}


def _begin(loaded: LoadedSpec, spec: RolloutSpec, canary: str, champion: str,
           now: datetime) -> dict[str, Any]:
    state = {"id": f"{now:%Y%m%dT%H%M%S}-v{canary}", "model": _name(loaded), "mode": spec.mode,
             "champion": champion, "challenger": canary, "status": rs.RUNNING, "step": 0,
             "steps": list(spec.steps), "weight": spec.steps[0], "started_at": now.isoformat(),
             "step_started_at": now.isoformat(), "step_starts": [now.isoformat()],
             "ended_at": None, "metric_p": 1.0,
             "decisions": [], "looks": []}
    state["task"], state["positive"] = _task(loaded, canary)
    rs.write(rs.state_uri(loaded), state)  # servers start routing from here
    _record(loaded, state, "started", {"reason": f"{spec.mode} of v{canary} against champion "
                                       f"v{champion}: steps {spec.steps}"})
    print(f"rollout {state['id']}: {spec.mode} v{canary} vs champion v{champion}, "
          f"{spec.steps[0]}% first", flush=True)
    return state


def _end(loaded: LoadedSpec, state: dict[str, Any], now: datetime, status: str, reason: str,
         look: dict[str, Any] | None, drop_alias: bool = True) -> dict[str, Any]:
    """Traffic back first (weight 0 in the state the servers read), then the registry."""
    from loopline.integrations import mlflow_registry as reg

    if look is not None:
        _decided(state, look)
    state.update(status=status, weight=0 if status == rs.ROLLED_BACK else 100,
                 ended_at=now.isoformat(), reason=reason)
    name, version = _name(loaded), state["challenger"]
    if status == rs.PROMOTED:  # champion first: servers then see canary == champion
        client = reg.client(*_uris(loaded))
        with reg.locked(client, name):
            now_canary = reg.version_for_alias(client, name, CANARY)
            crowned = reg.version_for_alias(client, name, "champion") == version
            if now_canary not in (version, None) or (now_canary is None and not crowned):
                raise RolloutError(f"the canary alias moved to v{now_canary} while v{version} "
                                   "was being promoted; nothing promoted")
            if not crowned:
                reg.crown(client, name, version, reason=f"rollout {state['id']}: {reason}",
                          rollout=state["id"])
            _drop_canary(loaded, version)
        rs.write(rs.state_uri(loaded), state)
    else:  # traffic back on the champion first, then the registry
        rs.write(rs.state_uri(loaded), state)
        if drop_alias:
            _drop_canary(loaded, version)
    _record(loaded, state, "promoted" if status == rs.PROMOTED else "rolled_back",
            look or {"reason": reason})
    kind = "rollout.promoted" if status == rs.PROMOTED else "rollout.rolled_back"
    from loopline.integrations.alerts import event

    state["alerts"] = emit(loaded, event(
        kind, name, f"{name} v{version}: {kind.split('.')[1].replace('_', ' ')} at "
        f"{state['steps'][state['step']]}%: {reason}",
        {"rollout": state["id"], "version": version, "champion": state["champion"],
         "step": state["step"], "reason": reason}, key=state["id"]))
    rs.write(rs.state_uri(loaded), state)
    _save_record(loaded, state)
    print(f"rollout {state['id']}: {status.replace('_', ' ')} v{version}: {reason}", flush=True)
    return {**state, "decision": look}


def _drop_canary(loaded: LoadedSpec, expected: str) -> None:
    """Remove the canary alias if it still names `expected` (compare and delete under the
    model's lock: a canary a training run has just set is not someone else's to remove)."""
    from loopline.integrations import mlflow_registry as reg

    client, name = reg.client(*_uris(loaded)), _name(loaded)
    with reg.locked(client, name):
        if reg.version_for_alias(client, name, CANARY) == str(expected):
            client.delete_registered_model_alias(name, CANARY)
            reg.record_event(client, name, alias=CANARY, version=None, previous=str(expected),
                             reason="rollout ended")


def _decided(state: dict[str, Any], look: dict[str, Any]) -> None:
    state.setdefault("decisions", []).append(_brief(look))
    state.setdefault("looks", []).append(_brief(look))


def _brief(look: dict[str, Any]) -> dict[str, Any]:
    """What the record and the picture keep of a look."""
    chall, champ = look.get("challenger") or {}, look.get("champion") or {}
    return {"time": look.get("time"), "step": look.get("step"), "weight": look.get("weight"),
            "action": look.get("action"), "reason": look.get("reason"),
            "manual": look.get("manual", False), "challenger": chall, "champion": champ,
            "gates": look.get("gates") or [], "metric": look.get("metric")}


def _record(loaded: LoadedSpec, state: dict[str, Any], action: str,
            look: dict[str, Any]) -> None:
    """The decision in the registry history (`loopline models list`) and the record."""
    from loopline.integrations import mlflow_registry as reg

    chall = look.get("challenger") or {}
    facts = {k: chall.get(k) for k in ("requests", "error_rate", "p95_ms", "p99_ms")
             if chall.get(k) is not None}
    if (metric := look.get("metric")) and (metric.get("p_value") or 1.0) < 1.0:
        facts.update(metric=metric.get("outcome"), difference=metric.get("difference"),
                     p_value=metric.get("p_value"))
    reg.record_event(reg.client(*_uris(loaded)), _name(loaded), kind=EVENT_KIND, action=action,
                     rollout=state["id"], version=state["challenger"],
                     champion=state["champion"], step=state["step"],
                     weight=state["weight"], reason=look.get("reason", ""),
                     manual=bool(look.get("manual")), figures=facts)
    _save_record(loaded, state)


def _save_record(loaded: LoadedSpec, state: dict[str, Any]) -> None:
    """The rollout's record and its picture, beside each other."""
    import json

    from loopline.integrations.filesystems import write_text_whole, write_whole
    from loopline.ml.rollout_plot import draw

    write_text_whole(rs.record_uri(loaded, state["id"]), json.dumps(state, indent=2,
                                                                    default=str))
    folder, name = rs.record_uri(loaded, state["id"], ".png").rsplit("/", 1)
    try:
        write_whole(folder, name, lambda target: draw(state, target))
    except Exception as exc:  # noqa: BLE001 - a picture never stops a rollout decision
        print(f"rollout picture not drawn: {type(exc).__name__}: {exc}", flush=True)


def _log(loaded: LoadedSpec, since: datetime, now: datetime) -> Any:
    """The prediction log since the rollout began, labels joined; only the columns read."""
    root = location(loaded.spec.artifacts.root, loaded.project_root)
    name = _name(loaded)
    labels = prediction_labels.read(prediction_labels.labels_folder(root, name))
    keys = {c for frame in labels for c in frame.columns if c != prediction_labels.LABEL}
    columns = [prediction_log.TIME, prediction_log.REQUEST_ID, prediction_log.MODEL_VERSION,
               prediction_log.ROUTE, prediction_log.STATUS, prediction_log.LATENCY_MS,
               prediction_log.PREDICTION, *sorted(keys)]
    frame = prediction_log.read(prediction_log.log_folder(root, name), since, now,
                                list(dict.fromkeys(columns)))
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return prediction_labels.join(frame, labels)


def _task(loaded: LoadedSpec, version: str) -> tuple[str, Any]:
    """The challenger's task and positive class (its model card), for the metric."""
    from loopline.integrations.model_versions import resolve

    tracking, registry = _uris(loaded)
    info = resolve(tracking, registry, _name(loaded), version).info
    classes = info.get("classes") or [False, True]
    return str(info.get("task") or "classification"), classes[-1]


def start(loaded: LoadedSpec, version: str, reason: str = "manual start") -> dict[str, Any]:
    """Point the canary alias at `version` (verified, not the champion) and take a look."""
    from loopline.integrations import mlflow_registry as reg
    from loopline.integrations.model_card import ModelCard

    policy(loaded)
    name = _name(loaded)
    with applied(step_environment(loaded)):
        client = reg.client(*_uris(loaded))
        card = ModelCard.from_tags(client.get_model_version(name, version).tags or {})
        if not card.verified:
            raise RolloutError(f"v{version} was never verified; it cannot take traffic")
        with _deciding(loaded), reg.locked(client, name):  # the order every look takes
            if reg.version_for_alias(client, name, "champion") == str(version):
                raise RolloutError(f"v{version} is already the champion")
            state = rs.read(rs.state_uri(loaded))
            if state.get("status") not in rs.ACTIVE and state.get("challenger"):
                # The last rollout's record stays in rollouts/; a person may try again.
                rs.write(rs.state_uri(loaded), {**state, "challenger": None})
            reg.move_alias(client, name, CANARY, str(version), reason=reason)
    try:
        return evaluate(loaded)
    except ControllerBusy:  # a watcher acts on it at its next look
        return evaluate(loaded, act=False)
