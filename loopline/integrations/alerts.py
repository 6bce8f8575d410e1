"""Alerts: one dispatcher for every place Loopline raises an event (local runs, Airflow tasks
and their failure callbacks, KFP pods, the model server), over the spec's `alerts:` routes.

A route names the environment variable holding its webhook URL or routing key; the value is
read at send time and never leaves the dispatcher: every line returned, every failure reason
and every record Apprise or urllib3 log while sending is redacted (alert_senders).

De-duplication lives in `<artifacts root>/alerts/<model>/state.json` (alert_state), shared by
every process that can reach the artifact root:
* the same event (route, kind, key) is sent at most once per `throttle`;
* `monitor.breached` opens an incident per (route, key): while open, a repeat is suppressed;
  `monitor.recovered` resolves it on the routes that were told, and only on those.
A delivery is claimed in the state before it is sent and released if it fails, so two
processes raising the same event at once send it once and a failed delivery is tried again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline.integrations import alert_state
from loopline.integrations.alert_senders import Redactor, deliver
from loopline.spec.alerts import EVENT_KINDS, SEVERITIES, AlertRoute, AlertsSpec

# What each event means by default (a caller may raise or lower one, e.g. a minor breach).
SEVERITY = {
    "drift.warn": "warning", "drift.retrain": "warning", "gate.failed": "warning",
    "step.failed": "critical", "retrain.started": "info", "monitor.breached": "critical",
    "monitor.recovered": "info", "rollout.rolled_back": "warning", "rollout.promoted": "info",
}
# A resolving kind -> the kind whose incident it closes.
RESOLVES = {"monitor.recovered": "monitor.breached"}
CLOSED_BY = {opens: closes for closes, opens in RESOLVES.items()}
OPENS = frozenset(CLOSED_BY)


@dataclass(frozen=True)
class Event:
    kind: str  # spec.alerts.EVENT_KINDS
    model: str
    severity: str  # info | warning | critical
    summary: str  # one line, no secrets
    details: dict[str, Any] = field(default_factory=dict)  # figures
    key: str = ""  # what makes two events "the same" (check name, step name ...)
    resolve: bool = False  # monitor.recovered: resolves the open monitor.breached of the key

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; kinds: {', '.join(EVENT_KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def family(self) -> str:
        """`monitor` for monitor.breached and .recovered: what a resolve pairs up."""
        return self.kind.split(".", 1)[0]

    @property
    def dedup_key(self) -> str:
        return f"loopline/{self.model}/{self.family}/{self.key}"

    def to_json(self) -> dict[str, Any]:
        return {"source": "loopline", **asdict(self), "dedup_key": self.dedup_key,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def event(kind: str, model: str, summary: str, details: dict[str, Any] | None = None,
          key: str = "", severity: str | None = None) -> Event:
    """An Event with the kind's default severity; a resolving kind resolves."""
    return Event(kind, model, severity or SEVERITY[kind], summary, dict(details or {}), key,
                 resolve=kind in RESOLVES)


@dataclass(frozen=True)
class Delivery:
    """What happened on one route; `str()` is the line printed and returned."""

    route: str  # "slack (LOOPLINE_SLACK_WEBHOOK)"
    status: str  # sent | failed | skipped | suppressed | unrouted | note
    text: str

    def __str__(self) -> str:
        return f"{self.route}: {self.text}"


def label(route: AlertRoute) -> str:
    return f"{route.to} ({route.secret})"


def _ago(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plan(route: AlertRoute, ev: Event, state: dict[str, Any] | None, throttle_s: float,
         now: float) -> tuple[str, str]:
    """(`send` | `suppressed` | `unrouted`, why) for one route, from the shared state
    (None: no state, so nothing is suppressed)."""
    wanted = route.wants(ev.kind, ev.severity)
    if state is None:
        return ("send", "") if wanted or ev.resolve else ("unrouted", _unrouted(route, ev))
    opened = state["open"].get(alert_state.incident_key(label(route), ev))
    if ev.resolve:  # to every route that was told of the incident, whatever it wants now
        if opened is not None:
            return "send", ""
        return ("suppressed" if wanted else "unrouted",
                f"nothing to resolve: no {ev.family} alert open for {ev.key!r}")
    if not wanted:
        return "unrouted", _unrouted(route, ev)
    if ev.kind in OPENS:
        if opened is not None:
            return "suppressed", (f"{ev.kind} {ev.key!r} already open (for "
                                  f"{_ago(now - opened['since'])}) until "
                                  f"{CLOSED_BY[ev.kind]}")
        return "send", ""
    last = state["sent"].get(alert_state.sent_key(label(route), ev))
    if last is not None and now - last < throttle_s:
        return "suppressed", (f"{ev.kind} {ev.key!r} sent {_ago(now - last)} ago "
                              f"(throttle {_ago(throttle_s)})")
    return "send", ""


def _unrouted(route: AlertRoute, ev: Event) -> str:
    return (f"{ev.kind} ({ev.severity}) not routed here (events: {', '.join(route.events)}; "
            f"min_severity: {route.min_severity})")


def dispatch(alerts: AlertsSpec, ev: Event, state_folder: str | None,
             environ: Mapping[str, str] | None = None, now: float | None = None,
             ) -> list[Delivery]:
    """Send `ev` on every route that wants it, de-duplicated through the state under
    `state_folder` (None: not de-duplicated, e.g. a test event); never raises."""
    environ = os.environ if environ is None else environ
    now = time.time() if now is None else now
    redact = Redactor(environ.get(r.secret, "") for r in alerts.routes)
    results: dict[int, Delivery] = {}
    claims: dict[int, alert_state.Undo | None] = {}
    with alert_state.claiming(state_folder) as session:
        for index, route in enumerate(alerts.routes):
            action, why = plan(route, ev, session.state, alerts.throttle_s, now)
            if action != "send":
                results[index] = Delivery(label(route), action, f"{action}: {why}"
                                          if action == "suppressed" else why)
            elif not environ.get(route.secret):
                results[index] = Delivery(label(route), "skipped",
                                          f"skipped: {route.secret} is not set here")
            else:
                claims[index] = None if session.state is None else alert_state.claim(
                    session.state, label(route), ev, now, alerts.throttle_s,
                    opens=ev.kind in OPENS)
    problems = list(session.problems)
    failed: list[alert_state.Undo] = []
    for index, undo in claims.items():
        route = alerts.routes[index]
        reason = deliver(route, environ[route.secret], ev, environ, redact)
        if reason is None:
            done = "resolved" if ev.resolve else "sent"
            results[index] = Delivery(label(route), "sent", f"{done} {ev.kind} {ev.dedup_key}")
        else:
            results[index] = Delivery(label(route), "failed",
                                      f"{ev.kind} not delivered: {reason}")
            if undo is not None:
                failed.append(undo)
    if failed:  # not delivered: as if never sent, so the next identical event tries again
        with alert_state.claiming(state_folder) as session:
            for undo in failed:
                if session.state is not None:
                    alert_state.release(session.state, undo)
        problems += session.problems
    notes = [Delivery("alerts", "note", redact(problem)) for problem in problems]
    return notes + [results[i] for i in sorted(results)]
