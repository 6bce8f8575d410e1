"""Alert routing, severities, throttle/dedup state and redaction, without a network: the
decisions are plain functions over a route, an event and the shared state file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loopline.integrations import alert_state
from loopline.integrations.alert_senders import Redactor
from loopline.integrations.alerts import SEVERITY, Event, dispatch, event, plan
from loopline.runtime import alerting
from loopline.spec.alerts import EVENT_KINDS, AlertRoute, AlertsSpec
from tests.support import run_cli

NOW = 1_800_000_000.0
HOOK = "https://hooks.example.com/services/T0ABCDEF12/B0ABCDEF34/s3cr3tT0kenValue"


def route(**fields: Any) -> AlertRoute:
    return AlertRoute.model_validate({"to": "webhook", "secret": "HOOK_URL", **fields})


def state() -> dict[str, Any]:
    return alert_state.empty()


def test_every_kind_has_a_severity_and_only_recovery_resolves() -> None:
    assert set(SEVERITY) == set(EVENT_KINDS)
    assert event("step.failed", "m", "x").severity == "critical"
    assert event("retrain.started", "m", "x").severity == "info"
    assert event("drift.retrain", "m", "x").severity == "warning"
    assert event("monitor.breached", "m", "x", severity="warning").severity == "warning"
    assert [k for k in EVENT_KINDS if event(k, "m", "x").resolve] == ["monitor.recovered"]


def test_dedup_key_pairs_a_breach_with_its_recovery() -> None:
    breached = event("monitor.breached", "flights", "x", key="error_rate")
    recovered = event("monitor.recovered", "flights", "x", key="error_rate")
    assert breached.dedup_key == recovered.dedup_key == "loopline/flights/monitor/error_rate"
    assert event("monitor.breached", "flights", "x", key="p99").dedup_key != breached.dedup_key


def test_an_unknown_kind_or_severity_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown event kind 'drift\.maybe'"):
        Event("drift.maybe", "m", "info", "x")
    with pytest.raises(ValueError, match="severity 'fatal'"):
        Event("step.failed", "m", "fatal", "x")


@pytest.mark.parametrize(("events", "min_severity", "kind", "severity", "routed"), [
    (["*"], "info", "retrain.started", "info", True),
    (["monitor.*"], "info", "monitor.breached", "critical", True),
    (["monitor.*"], "info", "drift.warn", "warning", False),
    (["drift.warn", "step.failed"], "info", "step.failed", "critical", True),
    (["*"], "critical", "drift.warn", "warning", False),
    (["*"], "warning", "gate.failed", "warning", True),
])
def test_routes_take_events_by_pattern_and_severity(events: list[str], min_severity: str,
                                                    kind: str, severity: str,
                                                    routed: bool) -> None:
    r = route(events=events, min_severity=min_severity)
    action, why = plan(r, event(kind, "m", "x", severity=severity), state(), 1800, NOW)
    assert action == ("send" if routed else "unrouted")
    if not routed:
        assert f"{kind} ({severity}) not routed here" in why


def test_a_pattern_that_matches_no_event_is_a_spec_error() -> None:
    with pytest.raises(ValueError, match=r"'monitr\.\*' matches no event"):
        route(events=["monitr.*"])
    with pytest.raises(ValueError, match="not an environment variable name"):
        route(secret=HOOK)


def test_the_same_event_is_sent_once_per_throttle() -> None:
    r, data = route(), state()
    ev = event("drift.warn", "m", "x", key="v3")
    assert plan(r, ev, data, 1800, NOW) == ("send", "")
    alert_state.claim(data, "webhook (HOOK_URL)", ev, NOW, 1800, opens=False)
    action, why = plan(r, ev, data, 1800, NOW + 600)
    assert action == "suppressed"
    assert why == "drift.warn 'v3' sent 10 min ago (throttle 30 min)"
    assert plan(r, event("drift.warn", "m", "x", key="v4"), data, 1800, NOW + 600)[0] == "send"
    assert plan(r, event("drift.retrain", "m", "x", key="v3"), data, 1800, NOW)[0] == "send"
    assert plan(r, ev, data, 1800, NOW + 1800)[0] == "send"


def test_a_breach_opens_until_its_recovery_resolves_it() -> None:
    r, data, name = route(), state(), "webhook (HOOK_URL)"
    breached = event("monitor.breached", "m", "x", key="error_rate")
    recovered = event("monitor.recovered", "m", "x", key="error_rate")
    assert plan(r, recovered, data, 1800, NOW)[0] == "suppressed"  # nothing open yet
    alert_state.claim(data, name, breached, NOW, 1800, opens=True)
    # Still breached two hours later: one incident, no repeat (the throttle does not apply).
    action, why = plan(r, breached, data, 1800, NOW + 7200)
    assert action == "suppressed" and "open (for 120 min) until monitor.recovered" in why
    assert plan(r, recovered, data, 1800, NOW + 7200) == ("send", "")
    alert_state.claim(data, name, recovered, NOW + 7200, 1800, opens=False)
    assert data["open"] == {}
    action, why = plan(r, recovered, data, 1800, NOW + 7300)
    assert action == "suppressed" and why == ("nothing to resolve: no monitor alert open for "
                                              "'error_rate'")
    assert plan(r, breached, data, 1800, NOW + 7300)[0] == "send"  # a new incident


def test_a_resolve_reaches_a_route_that_was_told_even_if_it_no_longer_wants_it() -> None:
    """A PagerDuty route for critical events only: the recovery (info) must still close the
    incident it opened."""
    r, data = route(to="pagerduty", events=["monitor.breached"], min_severity="critical"), state()
    breached = event("monitor.breached", "m", "x", key="p99")
    alert_state.claim(data, "pagerduty (HOOK_URL)", breached, NOW, 1800, opens=True)
    assert plan(r, event("monitor.recovered", "m", "x", key="p99"), data, 1800, NOW) == \
        ("send", "")


def test_a_failed_delivery_releases_its_claim() -> None:
    data, name = state(), "webhook (HOOK_URL)"
    breached = event("monitor.breached", "m", "x", key="k")
    undo = alert_state.claim(data, name, breached, NOW, 1800, opens=True)
    alert_state.release(data, undo)
    assert data == state()
    alert_state.claim(data, name, breached, NOW, 1800, opens=True)
    before = json.loads(json.dumps(data))
    undo = alert_state.claim(data, name, event("monitor.recovered", "m", "x", key="k"),
                             NOW + 60, 1800, opens=False)
    alert_state.release(data, undo)  # the resolve failed: the incident is still open
    assert data == before


def test_old_throttle_entries_are_dropped() -> None:
    data = state()
    alert_state.claim(data, "r", event("drift.warn", "m", "x", key="a"), NOW, 1800, False)
    alert_state.claim(data, "r", event("drift.warn", "m", "x", key="b"), NOW + 3600, 1800,
                      False)
    assert list(data["sent"]) == ["r|drift.warn|b"]


def test_state_round_trips_through_a_local_folder_and_an_object_store(tmp_path: Path) -> None:
    ev = event("monitor.breached", "m", "x", key="k")
    for folder in (str(tmp_path / "alerts" / "m"), "memory://loopline-tests/alerts/m"):
        with alert_state.claiming(folder) as session:
            assert session.state == state() and not session.problems
            alert_state.claim(session.state, "r", ev, NOW, 1800, opens=True)
        with alert_state.claiming(folder) as session:
            assert session.state is not None
            assert session.state["open"] == {"r|monitor|k": {"since": NOW,
                                                             "kind": "monitor.breached"}}
    local = tmp_path / "alerts" / "m"
    assert sorted(p.name for p in local.iterdir()) == [".lock", "state.json"]  # no staging


def test_an_unreadable_state_starts_afresh_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "alerts" / "m"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{half a fi")
    with alert_state.claiming(str(folder)) as session:
        assert session.state == state()
        assert session.problems == [f"alert state {folder}/state.json was not JSON; "
                                    "started afresh"]


def test_redaction_covers_the_pieces_libraries_print() -> None:
    redact = Redactor([HOOK, "R0utingKey0123456789", "", "https://u:pw-Secret9@h.example/x?"
                       "token=AbC123xyz&team=ops"])
    assert redact(f"POST {HOOK}") == "POST ***"
    assert redact('"POST /services/T0ABCDEF12/B0ABCDEF34/s3cr3tT0kenValue HTTP/1.1"') == \
        '"POST *** HTTP/1.1"'
    assert "s3cr3tT0kenValue" not in redact("token s3cr3tT0kenValue in a message")
    assert redact("key R0utingKey0123456789 rejected") == "key *** rejected"
    assert redact("token=AbC123xyz and pw-Secret9") == "token=*** and ***"
    assert redact("HTTP 404 from the services endpoint") == "HTTP 404 from the services endpoint"


def test_a_route_whose_variable_is_unset_is_skipped_naming_it(tmp_path: Path) -> None:
    alerts = AlertsSpec(routes=[route(), route(to="slack", secret="SLACK_URL")])
    lines = dispatch(alerts, event("step.failed", "m", "x", key="s"), str(tmp_path), {})
    assert [str(d) for d in lines] == [
        "webhook (HOOK_URL): skipped: HOOK_URL is not set here",
        "slack (SLACK_URL): skipped: SLACK_URL is not set here"]
    assert not (tmp_path / "state.json").exists()  # nothing claimed, nothing to remember


def test_a_malformed_secret_fails_without_showing_it(tmp_path: Path) -> None:
    alerts = AlertsSpec(routes=[route(), route(to="slack", secret="SLACK_URL")])
    environ = {"HOOK_URL": "ftp-ish:s3cr3tT0kenValue", "SLACK_URL": HOOK}
    lines = [str(d) for d in dispatch(alerts, event("step.failed", "m", "x", key="s"),
                                      str(tmp_path), environ)]
    assert lines == [
        "webhook (HOOK_URL): step.failed not delivered: HOOK_URL does not hold an http(s) URL",
        "slack (SLACK_URL): step.failed not delivered: SLACK_URL does not hold a Slack "
        "incoming-webhook URL (https://hooks.slack.com/services/...)"]
    # Not delivered, so not remembered: the next identical event is tried again.
    with alert_state.claiming(str(tmp_path)) as session:
        assert session.state == state()


# ---------------------------------------------------------------- events from the runtime


def _loaded(registry: str | None = "flights-late-arrival", root: str = "artifacts") -> Any:
    spec = SimpleNamespace(name="flights", registry=registry and SimpleNamespace(
        model_name=registry), artifacts=SimpleNamespace(root=root), alerts=None)
    return SimpleNamespace(spec=spec, project_root=Path("/proj"), display="p/flights.yaml")


@pytest.mark.parametrize(("action", "kind"), [("alert", "drift.warn"),
                                              ("retrain", "drift.retrain"), ("none", None)])
def test_a_drift_summary_becomes_warn_or_retrain(action: str, kind: str | None) -> None:
    summary = {"action": action, "share_drifted": 0.5, "champion": {"version": "7"},
               "reasons": ["major drift in dep_delay"]}
    ev = alerting.drift_event(_loaded(), summary, {"run_id": "r1"})
    if kind is None:
        assert ev is None
        return
    assert ev is not None
    assert (ev.kind, ev.severity, ev.key) == (kind, "warning", "v7")
    assert ev.dedup_key == "loopline/flights-late-arrival/drift/v7"
    assert "major drift in dep_delay" in ev.summary and "50% of columns" in ev.summary
    assert ev.details["run_id"] == "r1"


def test_failed_steps_gates_and_retraining_become_events() -> None:
    loaded = _loaded()
    failed = alerting.step_failed(loaded, "train", "ValueError: bad\ntraceback ...", "r1",
                                  "kfp")
    assert (failed.kind, failed.severity, failed.key) == ("step.failed", "critical",
                                                          "flights.train")
    assert failed.summary == "flights.train failed on kfp (run r1): ValueError: bad"
    gate = {"passed": False, "checks": [
        {"passed": True, "detail": "roc_auc 0.71 >= min 0.6"},
        {"passed": False, "detail": "roc_auc 0.69 vs champion 0.73: worse by 0.04"}]}
    ev = alerting.gate_failed(loaded, "evaluate", gate, {"run_id": "r1"})
    assert (ev.kind, ev.severity) == ("gate.failed", "warning")
    assert ev.summary.endswith("champion unchanged: roc_auc 0.69 vs champion 0.73: worse "
                               "by 0.04")
    started = alerting.retrain_started(loaded, {
        "key": "abc", "pipeline": "pipelines/flights.yaml", "drift_pipeline": "flights_drift",
        "orchestrator": "local", "reason": "major drift in dep_delay", "dag": None})
    assert (started.kind, started.severity, started.key) == ("retrain.started", "info", "abc")
    assert "dag" not in started.details


def test_alert_state_lives_under_the_artifact_root_per_model() -> None:
    assert alerting.state_folder(_loaded(), "flights-late-arrival") == \
        "/proj/artifacts/alerts/flights-late-arrival"
    assert alerting.state_folder(_loaded(root="s3://bucket/ll"), "a/b c") == \
        "s3://bucket/ll/alerts/a_b_c"
    assert alerting.model_name(_loaded(registry=None)) == "flights"


def _run(orchestrator: str, summary: dict[str, Any] | None = None,
         tmp: Path | None = None) -> Any:
    """Just what `step_events` reads of a Run: the spec, ids, and a store holding a summary."""
    store = SimpleNamespace(output=lambda *_: None)
    if summary is not None and tmp is not None:
        (tmp / "drift.json").write_text(json.dumps(summary))
        store = SimpleNamespace(output=lambda *_: tmp / "drift.json")
    return SimpleNamespace(loaded=_loaded(), run_id="r1", orchestrator=orchestrator,
                           store=store)


def test_step_outcomes_become_events(tmp_path: Path) -> None:
    def outcome(status: str, error: str | None = None, **facts: Any) -> Any:
        return SimpleNamespace(status=status, facts=facts, error=error)

    local = _run("local")
    assert [e.kind for e in alerting.step_events(local, "s", outcome("failed", "boom"))] == \
        ["step.failed"]
    # Airflow reports the final failure itself (on_failure_callback), after its retries.
    assert alerting.step_events(_run("airflow"), "s", outcome("failed", "boom")) == []
    failed_gate = {"passed": False, "checks": [{"passed": False, "detail": "too low"}]}
    assert [e.kind for e in alerting.step_events(local, "evaluate",
                                                 outcome("succeeded", gate=failed_gate))] == \
        ["gate.failed"]
    assert alerting.step_events(local, "evaluate", outcome("cached", gate=failed_gate)) == []
    assert alerting.step_events(local, "evaluate", outcome(
        "succeeded", gate={"passed": True, "checks": []})) == []
    # Drift: the committed summary gives the reasons and the champion (the key).
    run = _run("kfp", {"action": "retrain", "share_drifted": 0.6, "reasons": ["60% drifted"],
                       "champion": {"version": "4"}}, tmp_path)
    (ev,) = alerting.step_events(run, "drift", outcome("succeeded", drift={
        "drift": True, "action": "retrain", "share_drifted": 0.6}))
    assert (ev.kind, ev.key) == ("drift.retrain", "v4") and "60% drifted" in ev.summary
    assert alerting.step_events(run, "drift", outcome("succeeded", drift={
        "drift": False, "action": "none", "share_drifted": 0.0})) == []


# ---------------------------------------------------------------- validate-spec


ALERTS_BLOCK = """
alerts:
  throttle: 15m
  routes:
    - {to: slack, secret: LOOPLINE_SLACK_WEBHOOK, events: ["drift.*", gate.failed]}
    - to: pagerduty
      secret: LOOPLINE_PAGERDUTY_KEY
      events: ["monitor.*", step.failed]
"""


def test_validate_spec_locates_an_undeclared_route_secret(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text() + ALERTS_BLOCK)
    lines = spec.read_text().splitlines()
    slack_line = next(i for i, line in enumerate(lines, 1) if "LOOPLINE_SLACK_WEBHOOK" in line)
    pd_line = next(i for i, line in enumerate(lines, 1) if "LOOPLINE_PAGERDUTY_KEY" in line)
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2, err
    problems = err.strip().splitlines()
    assert f"{spec}:{slack_line}: alerts.routes[0].secret: LOOPLINE_SLACK_WEBHOOK is not " \
           "declared under secrets: (pods get it from a Kubernetes secret)" in problems, err
    assert any(p.startswith(f"{spec}:{pd_line}: alerts.routes[1].secret: "
                            "LOOPLINE_PAGERDUTY_KEY is not declared") for p in problems), err
    spec.write_text(spec.read_text() + """
secrets:
  LOOPLINE_SLACK_WEBHOOK: {secret: loopline-alerts, key: slack-webhook}
  LOOPLINE_PAGERDUTY_KEY: {secret: loopline-alerts, key: pagerduty-routing-key}
""")
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 0, err
