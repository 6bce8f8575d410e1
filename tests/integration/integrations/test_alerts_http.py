"""Alerts over real HTTP: a real receiver on 127.0.0.1 (pytest-httpserver) stands in for a
generic webhook, PagerDuty's Events API v2 and a Slack incoming webhook.

The real PagerDuty and Slack endpoints cannot be reached from here, so the tests point them
at the receiver: PagerDuty through LOOPLINE_PAGERDUTY_URL (the dispatcher's own setting, also
used for EU accounts), Slack by moving Apprise's `NotifySlack.webhook_url` (Apprise accepts
only hooks.slack.com URLs, so the secret keeps the real Slack shape)."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from loopline import cli
from loopline.cli import alerts as alerts_cli
from loopline.components.contract import (
    Component,
    ComponentParams,
    Output,
    StepContext,
    StepResult,
)
from loopline.integrations.alerts import dispatch, event
from loopline.pipeline.load import load_pipeline
from loopline.runtime.alerting import emit
from loopline.spec.alerts import AlertsSpec
from tests.support import run_cli
from tests.support.services import free_port

ROUTING_KEY = "R0UTINGkey5ecret0123456789abcd"  # a planted secret: must never be shown
HOOK_TOKEN = "H00kT0ken5ecretXYZ"
SLACK_TOKEN = "SlackT0ken5ecretQRS"
SLACK_URL = f"https://hooks.slack.com/services/T0LOOPLINE/B0LOOPLINE/{SLACK_TOKEN}"
SECRETS = (ROUTING_KEY, HOOK_TOKEN, SLACK_TOKEN)

ALERTS = """
alerts:
  throttle: 30m
  routes:
    - {to: pagerduty, secret: LOOPLINE_PAGERDUTY_KEY, events: ["monitor.*", step.failed]}
    - {to: webhook, secret: LOOPLINE_WEBHOOK_URL}
    - {to: slack, secret: LOOPLINE_SLACK_WEBHOOK, min_severity: warning}
secrets:
  LOOPLINE_PAGERDUTY_KEY: {secret: loopline-alerts, key: pagerduty-routing-key}
  LOOPLINE_WEBHOOK_URL: {secret: loopline-alerts, key: webhook-url}
  LOOPLINE_SLACK_WEBHOOK: {secret: loopline-alerts, key: slack-webhook}
"""


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def _point_routes_at(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    """The three destinations, on `base` (a live receiver or a closed port)."""
    from apprise.plugins.slack import NotifySlack

    monkeypatch.setenv("LOOPLINE_PAGERDUTY_URL", f"{base}/v2/enqueue")
    monkeypatch.setenv("LOOPLINE_PAGERDUTY_KEY", ROUTING_KEY)
    monkeypatch.setenv("LOOPLINE_WEBHOOK_URL", f"{base}/hook/{HOOK_TOKEN}?team=ml")
    monkeypatch.setenv("LOOPLINE_SLACK_WEBHOOK", SLACK_URL)
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{base}/services")


@pytest.fixture
def routed(receiver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    receiver.expect_request("/v2/enqueue", method="POST").respond_with_json(
        {"status": "success", "message": "Event processed"}, status=202)
    receiver.expect_request(f"/hook/{HOOK_TOKEN}", method="POST").respond_with_data("")
    receiver.expect_request(f"/services/T0LOOPLINE/B0LOOPLINE/{SLACK_TOKEN}",
                            method="POST").respond_with_data("ok")
    _point_routes_at(monkeypatch, receiver.url_for("").rstrip("/"))
    return receiver


@pytest.fixture
def spec(small_project: Path) -> Path:
    path = small_project / "pipelines" / "train.yaml"
    path.write_text(path.read_text() + ALERTS)
    return path


def _received(server: HTTPServer, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in server.log
            if request.path.startswith(prefix)]


def test_three_breaches_page_once_and_one_recovery_resolves(spec: Path,
                                                            routed: HTTPServer) -> None:
    loaded = load_pipeline(spec)
    breach = event("monitor.breached", "my-model", "error rate 4.1% > 1% for 3 minutes",
                   {"value": 0.041, "threshold": 0.01}, key="error_rate")
    first = emit(loaded, breach)
    assert first == [
        "pagerduty (LOOPLINE_PAGERDUTY_KEY): sent monitor.breached "
        "loopline/my-model/monitor/error_rate",
        "webhook (LOOPLINE_WEBHOOK_URL): sent monitor.breached "
        "loopline/my-model/monitor/error_rate",
        "slack (LOOPLINE_SLACK_WEBHOOK): sent monitor.breached "
        "loopline/my-model/monitor/error_rate"]
    for _ in range(2):
        assert [line.split(": ", 1)[1] for line in emit(loaded, breach)] == 3 * [
            "suppressed: monitor.breached 'error_rate' already open (for 0 s) until "
            "monitor.recovered"]
    recovered = event("monitor.recovered", "my-model", "error rate 0.2%", key="error_rate")
    assert all(" resolved monitor.recovered" in line for line in emit(loaded, recovered))
    assert all("nothing to resolve" in line for line in emit(loaded, recovered))

    pages = _received(routed, "/v2/enqueue")
    assert [p["event_action"] for p in pages] == ["trigger", "resolve"]
    assert {p["routing_key"] for p in pages} == {ROUTING_KEY}
    assert {p["dedup_key"] for p in pages} == {"loopline/my-model/monitor/error_rate"}
    trigger = pages[0]["payload"]
    assert trigger["severity"] == "critical" and trigger["class"] == "monitor.breached"
    assert trigger["summary"] == "error rate 4.1% > 1% for 3 minutes"
    assert trigger["custom_details"] == {"key": "error_rate", "value": 0.041,
                                         "threshold": 0.01}
    hooks = _received(routed, "/hook/")
    assert [(h["kind"], h["resolve"]) for h in hooks] == [("monitor.breached", False),
                                                          ("monitor.recovered", True)]
    assert hooks[0]["details"] == {"value": 0.041, "threshold": 0.01}
    assert len(_received(routed, "/services/")) == 2  # the warning route: breach + resolve
    # The shared state, under the artifact root, per model.
    state = spec.parents[1] / "artifacts" / "alerts" / "my-model" / "state.json"
    assert json.loads(state.read_text())["open"] == {}


def test_routes_filter_by_event_and_severity(spec: Path, routed: HTTPServer) -> None:
    lines = emit(load_pipeline(spec), event("retrain.started", "my-model", "retraining",
                                            key="k1"))
    # PagerDuty wants monitor.* and step.failed; Slack wants warning and up.
    assert lines == ["webhook (LOOPLINE_WEBHOOK_URL): sent retrain.started "
                     "loopline/my-model/retrain/k1"]
    (hook,) = _received(routed, "/hook/")
    assert (hook["kind"], hook["severity"], hook["summary"]) == ("retrain.started", "info",
                                                                "retraining")


def test_slack_gets_a_readable_message(spec: Path, routed: HTTPServer) -> None:
    emit(load_pipeline(spec), event("drift.retrain", "my-model", "my-model: drift says "
                                    "retrain (60% of columns drifted)", {"share": 0.6},
                                    key="v3"))
    (message,) = _received(routed, "/services/")
    (attachment,) = message["attachments"]
    assert attachment["title"] == "WARNING: drift.retrain · my-model"
    assert attachment["text"] == "my-model: drift says retrain (60% of columns drifted)\n" \
                                 "share: 0.6"


def test_secrets_never_show_in_lines_output_logs_or_errors(
        spec: Path, receiver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Every destination refuses, echoing the URL it was called on (as proxies do), while
    every logger runs at DEBUG (Apprise and urllib3 print URLs and payloads there)."""
    def echo(request: Any) -> Any:
        from werkzeug import Response

        return Response(f"no route for {request.url} {request.get_data(as_text=True)}",
                        status=500)

    receiver.expect_request("", method="POST").respond_with_handler(echo)
    _point_routes_at(monkeypatch, receiver.url_for("").rstrip("/"))
    caplog.set_level(logging.DEBUG)
    # Libraries imported by earlier tests in this worker raise urllib3's level, and a logging
    # config may disable loggers: the loggers that would print a secret must be on at DEBUG
    # for this to prove anything.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.split(".")[0] in ("urllib3", "apprise", "requests") and \
                isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            monkeypatch.setattr(logger, "disabled", False)
            monkeypatch.setattr(logger, "propagate", True)
    loaded = load_pipeline(spec)
    lines = emit(loaded, event("step.failed", "my-model", "train failed", key="train.train"))
    lines += [str(d) for d in dispatch(loaded.spec.alerts, event(
        "monitor.breached", "my-model", "x", key="k"), None)]
    out, err = capsys.readouterr()
    assert len(receiver.log) == 6  # every destination was called, and refused
    assert sum("not delivered: HTTP 500" in line for line in lines) == 4, lines
    assert sum("slack (LOOPLINE_SLACK_WEBHOOK): step.failed not delivered" in line
               for line in lines) == 1, lines
    assert "***" in "\n".join(lines)  # the echoed URLs were there, redacted
    # Our side's log records (the receiver's own access log, werkzeug, is the destination's).
    logged = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records
                       if not r.name.startswith("werkzeug"))
    assert "urllib3.connectionpool" in logged and "POST ***" in logged
    for text in (*lines, out, err, logged):
        for secret in SECRETS:
            assert secret not in text


def test_a_dead_receiver_is_reported_not_raised_and_retried_later(
        spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _point_routes_at(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens
    loaded = load_pipeline(spec)
    breach = event("monitor.breached", "my-model", "x", key="error_rate")
    started = time.perf_counter()
    lines = emit(loaded, breach)
    assert time.perf_counter() - started < 15
    assert lines[:2] == [
        "pagerduty (LOOPLINE_PAGERDUTY_KEY): monitor.breached not delivered: could not connect",
        "webhook (LOOPLINE_WEBHOOK_URL): monitor.breached not delivered: could not connect"]
    assert lines[2].startswith("slack (LOOPLINE_SLACK_WEBHOOK): monitor.breached not "
                               "delivered: A Connection error occurred posting"), lines
    # Nothing was delivered, so nothing is open: the next breach is tried again.
    assert emit(loaded, breach) == lines


@pytest.mark.slow
def test_a_failed_step_alerts_from_the_executor(tmp_path: Path, routed: HTTPServer) -> None:
    project = tmp_path / "p"
    (project / "pipelines").mkdir(parents=True)
    spec = project / "pipelines" / "flaky.yaml"
    spec.write_text(textwrap.dedent("""\
        name: flaky
        steps:
          check:
            component: tests.support.slow_component:FLAKY
            params: {verdict: true}
        """) + ALERTS)
    code, _, err = run_cli("run", str(spec))
    assert code == 1
    assert "check │ alert: pagerduty (LOOPLINE_PAGERDUTY_KEY): sent step.failed " \
           "loopline/flaky/step/flaky.check" in err, err
    (page,) = _received(routed, "/v2/enqueue")
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["summary"].startswith("flaky.check failed on local (run ")
    assert page["payload"]["summary"].endswith("): the data says no")
    # Failing again within the throttle: logged as suppressed, nobody paged twice.
    code, _, err = run_cli("run", str(spec))
    assert "sent step.failed flaky.check" not in err and "suppressed: step.failed" in err
    assert len(_received(routed, "/v2/enqueue")) == 1


# Stand-ins with the facts evaluate.gate and drift.evidently report (the real ones need a
# trained model and a champion): the hook reads only the outcome's facts and the summary.
def _gate(ctx: StepContext, params: ComponentParams) -> StepResult:
    ctx.output_path("verdict").write_text("{}")
    return StepResult(facts={"gate": {"passed": False, "checks": [
        {"passed": True, "detail": "accuracy 0.81 >= min 0.7"},
        {"passed": False, "detail": "roc_auc 0.512 < min 0.6"}]}})


def _drift(ctx: StepContext, params: ComponentParams) -> StepResult:
    summary = {"drift": True, "action": "retrain", "share_drifted": 0.5,
               "reasons": ["major drift in dep_delay"], "champion": {"version": "3"}}
    ctx.output_path("summary").write_text(json.dumps(summary))
    return StepResult(facts={"drift": {k: summary[k] for k in ("drift", "action",
                                                                 "share_drifted")}})


GATE = Component(name="tests.gate", version="1", description="a failed gate",
                 params=ComponentParams, run=_gate,
                 outputs={"verdict": Output("verdict.json", "json")})
DRIFT = Component(name="tests.drift", version="1", description="drift says retrain",
                  params=ComponentParams, run=_drift,
                  outputs={"summary": Output("drift.json", "json")})


@pytest.mark.slow
def test_a_failed_gate_and_drift_alert_once_then_cache_hits_stay_quiet(
        tmp_path: Path, routed: HTTPServer) -> None:
    project = tmp_path / "p"
    (project / "pipelines").mkdir(parents=True)
    spec = project / "pipelines" / "judge.yaml"
    here = "tests.integration.integrations.test_alerts_http"
    spec.write_text(textwrap.dedent(f"""\
        name: judge
        registry: {{model_name: flights-late-arrival}}
        steps:
          evaluate: {{component: "{here}:GATE"}}
          drift: {{component: "{here}:DRIFT"}}
        """) + ALERTS)
    code, _, err = run_cli("run", str(spec))
    assert code == 0, err
    assert "evaluate │ alert: webhook (LOOPLINE_WEBHOOK_URL): sent gate.failed " \
           "loopline/flights-late-arrival/gate/judge.evaluate" in err, err
    assert "drift │ alert: slack (LOOPLINE_SLACK_WEBHOOK): sent drift.retrain " \
           "loopline/flights-late-arrival/drift/v3" in err, err
    hooks = {h["kind"]: h for h in _received(routed, "/hook/")}
    assert set(hooks) == {"gate.failed", "drift.retrain"}
    assert hooks["gate.failed"]["summary"] == (
        "flights-late-arrival: gate failed in judge.evaluate, champion unchanged: "
        "roc_auc 0.512 < min 0.6")
    assert hooks["drift.retrain"]["severity"] == "warning"
    assert hooks["drift.retrain"]["details"]["reasons"] == ["major drift in dep_delay"]
    assert _received(routed, "/v2/enqueue") == []  # PagerDuty takes monitor.* and failures
    code, _, err = run_cli("run", str(spec))  # cached: what they said was told already
    assert code == 0 and "alert:" not in err, err
    assert len(_received(routed, "/hook/")) == 2


def test_alerts_test_command_sends_through_every_route(spec: Path, routed: HTTPServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if alerts_cli.register not in cli.REGISTER:  # until `loopline alerts` is registered
        monkeypatch.setattr(cli, "REGISTER", (*cli.REGISTER, alerts_cli.register))
    code, out, err = run_cli("alerts", "test", str(spec))
    assert code == 0, err
    assert out.splitlines()[:3] == [
        "pagerduty (LOOPLINE_PAGERDUTY_KEY): sent monitor.breached loopline/my-model/monitor/test",
        "webhook (LOOPLINE_WEBHOOK_URL): sent monitor.breached loopline/my-model/monitor/test",
        "slack (LOOPLINE_SLACK_WEBHOOK): sent monitor.breached loopline/my-model/monitor/test"]
    code, out, _ = run_cli("alerts", "test", str(spec), "--kind", "monitor.recovered")
    assert code == 0 and out.count("resolved monitor.recovered") == 3
    assert [p["event_action"] for p in _received(routed, "/v2/enqueue")] == ["trigger",
                                                                              "resolve"]
    code, out, _ = run_cli("alerts", "test", str(spec), "--kind", "retrain.started")
    assert code == 0 and "not routed here" in out  # said, and not a failure
    monkeypatch.delenv("LOOPLINE_SLACK_WEBHOOK")
    code, out, _ = run_cli("alerts", "test", str(spec))
    assert code == 1
    assert "slack (LOOPLINE_SLACK_WEBHOOK): skipped: LOOPLINE_SLACK_WEBHOOK is not set " \
           "here" in out
    code, _, err = run_cli("alerts", "test", str(spec), "--kind", "monitor.broke")
    assert code == 2 and "--kind monitor.broke: not an event kind" in err


def test_a_spec_without_alerts_sends_nothing(small_project: Path) -> None:
    loaded = load_pipeline(small_project / "pipelines" / "train.yaml")
    assert emit(loaded, event("step.failed", "my-model", "x")) == []
    assert dispatch(AlertsSpec(), event("step.failed", "my-model", "x"), None) == []


AIRFLOW_SPECS = {
    # Fails its first try, which Airflow retries: the run succeeds, nobody is paged.
    "retried": "params: {fail_times: 1}\n    retries: 1\n    retry_delay_s: 0",
    # A verdict: no retry, the task fails, the failure callback alerts.
    "doomed": "params: {verdict: true}",
}


@pytest.mark.slow
def test_airflow_alerts_a_task_failure_once_after_its_retries(tmp_path: Path,
                                                             routed: HTTPServer) -> None:
    from tests.support.airflow import airflow_env, migrate, python

    project = tmp_path / "p"
    pipelines = project / "pipelines"
    pipelines.mkdir(parents=True)
    for name, step in AIRFLOW_SPECS.items():
        (pipelines / f"{name}.yaml").write_text(
            f"name: {name}\nsteps:\n  check:\n    component: "
            f"tests.support.slow_component:FLAKY\n    {step}\n" + ALERTS)
    home = tmp_path / "home"
    home.mkdir()
    env = airflow_env(home, pipelines, LOOPLINE_WEBHOOK_URL=routed.url_for("/hook/")
                      + HOOK_TOKEN, LOOPLINE_PAGERDUTY_KEY=ROUTING_KEY,
                      LOOPLINE_PAGERDUTY_URL=routed.url_for("/v2/enqueue"))
    env.pop("LOOPLINE_SLACK_WEBHOOK", None)
    migrate(env)
    result = python(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
        import loopline_dags
        for name in ("retried", "doomed"):
            print("STATE", name, getattr(loopline_dags, name).test().state)
    """), env)
    assert "STATE retried success" in result.stdout, result.stderr[-4000:]
    assert "STATE doomed failed" in result.stdout, result.stderr[-4000:]
    (page,) = _received(routed, "/v2/enqueue")
    assert (page["event_action"], page["dedup_key"]) == ("trigger",
                                                         "loopline/doomed/step/doomed.check")
    summary = page["payload"]["summary"]
    assert summary.startswith("doomed.check failed on airflow (run manual__"), summary
    assert "the data says no" in summary
    assert page["payload"]["custom_details"]["try_number"] == 1
    hooks = _received(routed, "/hook/")
    assert [(h["kind"], h["key"]) for h in hooks] == [("step.failed", "doomed.check")]
    logs = result.stdout + result.stderr
    for secret in (ROUTING_KEY, HOOK_TOKEN):
        assert secret not in logs
