"""Live checks end to end: real log files under a project's artifact root, a real SQLite
registry with a trained and promoted version, `monitoring.evaluate` run minute after minute.

Three bad minutes in a row flip a check once (one history event, one alert), three good ones
resolve it once; a single bad minute never does. A breached `retrain_on` check goes through
the drift spec's own trigger: one breach episode, one retraining; the cooldown is shared."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.integrations import prediction_labels
from loopline.integrations.mlflow_registry import history
from loopline.pipeline.load import load_pipeline
from loopline.runtime import monitoring, retrain
from tests.support import registry_client
from tests.support.live_monitoring import (
    MODEL,
    copy_project,
    log_minute,
    sample,
    trained_project,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("served") / "project")


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    return copy_project(trained, tmp_path / "project")


def _start() -> datetime:
    """Traffic starts on the next whole minute (after the version was registered)."""
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)


def _events(project: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in history(registry_client(project), MODEL) if e.get("kind") == kind]


def _evaluate_minutes(project: Path, t0: datetime, minutes: list[Callable[[datetime], Any]],
                      **options: Any) -> list[dict[str, Any]]:
    """Log minute k with minutes[k](start), then evaluate at its end."""
    loaded = load_pipeline(project / "pipelines" / "train.yaml")
    results = []
    for k, write in enumerate(minutes):
        start = t0 + timedelta(minutes=k)
        write(start)
        results.append(monitoring.evaluate(loaded, now=start + timedelta(minutes=1), **options))
    return results


def test_error_rate_flips_after_hold_and_recovers_once(project: Path, httpserver: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _alert_receiver(project, httpserver, monkeypatch)
    t0 = _start()

    def ok(start: datetime) -> None:
        log_minute(project, start)

    def bad(start: datetime) -> None:
        log_minute(project, start, errors=6)  # 10 % > 5 %

    def slow(start: datetime) -> None:
        log_minute(project, start, latency_ms=50.0)  # one slow minute: 10x the baseline

    results = _evaluate_minutes(project, t0, [ok, bad, slow, bad, bad, bad, bad, ok, ok, ok])
    states = [r["checks"]["error_rate"]["state"] for r in results]
    assert states == ["healthy"] * 5 + ["breached"] * 4 + ["healthy"]
    first = results[0]["checks"]
    assert first["error_rate"] | {"detail": None} == {
        "check": "error_rate", "value": 0.0, "threshold": 0.05, "breached": False,
        "detail": None, "requests": 60, "errors": 0, "state": "healthy", "streak": 0,
        "since": None}
    assert results[1]["checks"]["error_rate"]["value"] == pytest.approx(0.1)
    assert results[1]["checks"]["error_rate"]["streak"] == 1
    # The latency baseline is v1's own p99 over its first minute (the spec's window).
    baseline = results[0]["baseline"]
    assert (baseline["p99_ms"], baseline["requests"], baseline["first_seen"]) == \
        (5.0, 60, t0.isoformat())
    latency = results[2]["checks"]["latency"]
    assert (latency["value"], latency["threshold"], latency["breached"]) == (50.0, 10.0, True)
    assert results[2]["checks"]["latency"]["state"] == "healthy"  # one slow minute: no flip
    assert results[0]["checks"]["metric"]["breached"] is None  # no labels yet
    assert "0 labelled predictions" in results[0]["checks"]["metric"]["detail"]

    moves = [t for r in results for t in r["transitions"]]
    assert [(m["check"], m["from"], m["to"], m["after"]) for m in moves] == [
        ("error_rate", "healthy", "breached", 3), ("error_rate", "breached", "healthy", 3)]
    assert results[5]["transitions"][0]["value"] == pytest.approx(0.1)
    events = _events(project, "monitor")
    assert [(e["check"], e["state"], e["version"]) for e in events] == [
        ("error_rate", "breached", "1"), ("error_rate", "healthy", "1")]
    assert events[0]["reason"].startswith("error_rate breached after 3 evaluations: 6 of 60")
    assert _events(project, "retrain") == []  # error_rate is not in retrain_on

    kept = json.loads((project / "artifacts" / "monitoring" / MODEL / "live_state.json")
                      .read_text())
    assert kept["checks"]["error_rate"]["state"] == "healthy"
    assert kept["checks"]["error_rate"]["since"] == (t0 + timedelta(minutes=10)).isoformat()
    assert kept["baselines"]["1"]["p99_ms"] == 5.0
    # Another process (a second server worker) asking within `every`: nothing evaluated twice.
    again = monitoring.evaluate(load_pipeline(project / "pipelines" / "train.yaml"),
                                now=t0 + timedelta(minutes=10, seconds=20), if_due=True)
    assert "skipped" in again
    # One alert when it flipped, one resolve when it recovered; nothing in between.
    assert [len(r["transitions"]) for r in results] == [0] * 5 + [1, 0, 0, 0, 1]
    assert results[5]["transitions"][0]["alerts"] == [
        "webhook (LOOPLINE_TEST_HOOK): sent monitor.breached loopline/my-model/monitor/error_rate"]
    bodies = [json.loads(r.get_data()) for r, _ in httpserver.log]
    assert [(b["kind"], b["key"], b["resolve"], b["severity"]) for b in bodies] == [
        ("monitor.breached", "error_rate", False, "critical"),
        ("monitor.recovered", "error_rate", True, "info")]
    assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"] == "loopline/my-model/monitor/" \
                                                                "error_rate"
    assert bodies[0]["details"]["value"] == pytest.approx(0.1)


def _labels(project: Path, ids: list[str], offset: int) -> None:
    late = (sample(project)["arr_delay"] > 15).iloc[offset:offset + len(ids)].to_numpy()
    prediction_labels.write(
        prediction_labels.labels_folder(str(project / "artifacts"), MODEL),
        pd.DataFrame({"request_id": ids, "label": late}))


def _scored(project: Path, offset: int, right: bool) -> np.ndarray:
    """Scores that rank the real labels right (roc_auc near 1) or backwards (near 0)."""
    late = (sample(project)["arr_delay"] > 15).iloc[offset:offset + 60].to_numpy()
    noise = np.random.default_rng(offset).random(60) * 0.4
    return np.where(late == right, 0.6, 0.0) + noise


def _labelled_minute(project: Path, right: bool) -> Callable[[datetime], None]:
    def write(start: datetime) -> None:
        offset = start.minute * 60 % 2900
        ids = log_minute(project, start, predictions=_scored(project, offset, right),
                         offset=offset)
        _labels(project, ids, offset)

    return write


def test_a_metric_breach_retrains_once_through_the_drift_trigger(project: Path) -> None:
    started: list[dict[str, Any]] = []

    def start(target: Any, trigger: retrain.Trigger) -> dict[str, Any]:
        retrain.record(target, trigger)  # what every real starter does first
        started.append(trigger.event)
        return {"started": "test"}

    t0 = _start()
    bad, good = _labelled_minute(project, right=False), _labelled_minute(project, right=True)
    results = _evaluate_minutes(project, t0, [bad, bad, bad, bad, good, good, good, bad, bad,
                                              bad], start=start)
    metric = results[0]["checks"]["metric"]
    assert (metric["metric"], metric["labelled"], metric["breached"]) == ("roc_auc", 60, True)
    evaluation = metric["evaluation"]
    assert metric["threshold"] == pytest.approx(evaluation - 0.05) and metric["value"] < 0.2
    assert results[0]["window"]["labelled"] == 60
    assert [r["retrain"] is None for r in results[:2]] == [True, True]

    decision = results[2]["retrain"]
    assert decision["retrain"] is True and decision["started"] == "test"
    assert decision["spec"] == str(project / "pipelines" / "drift.yaml")
    assert decision["pipeline"] == "pipelines/train.yaml"
    assert decision["reason"].startswith("live metric: roc_auc ")
    (event,) = started
    assert (event["source"], event["checks"], event["champion"]) == ("monitor", ["metric"], "1")
    # Still breached: the same episode has already retrained.
    assert "already started retraining" in results[3]["retrain"]["suppressed"]
    assert [r["checks"]["metric"]["state"] for r in results[4:7]] == \
        ["breached", "breached", "healthy"]
    assert results[6]["retrain"] is None
    # A new episode within the drift spec's cooldown (1h): decided, not started.
    assert results[9]["checks"]["metric"]["state"] == "breached"
    assert results[9]["retrain"]["suppressed"].startswith("cooldown:")
    assert len(started) == 1
    (recorded,) = _events(project, "retrain")
    assert recorded["key"] == event["key"] and recorded["drift_pipeline"] == "drift"
    assert [e["state"] for e in _events(project, "monitor")] == \
        ["breached", "healthy", "breached"]


def test_the_metric_looks_further_back_for_labelled_predictions(project: Path) -> None:
    """Labels arrive hours after the predictions: the metric reads `metric_window` of the
    log (only the columns it needs), while the other checks see the last minute."""
    spec = project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text().replace("metric_window: 1m", "metric_window: 1h"))
    t0 = _start()
    _labelled_minute(project, right=False)(t0)
    log_minute(project, t0 + timedelta(minutes=29))  # recent traffic, not labelled yet
    result = monitoring.evaluate(load_pipeline(spec), now=t0 + timedelta(minutes=30))
    assert (result["window"]["requests"], result["window"]["labelled"]) == (60, 0)
    assert result["metric_window"] | {"since": None} == {
        "since": None, "seconds": 3600.0, "requests": 120, "labelled": 60}
    metric = result["checks"]["metric"]
    assert (metric["labelled"], metric["breached"]) == (60, True)
    assert result["checks"]["error_rate"]["requests"] == 60


def test_the_background_start_runs_the_training_spec_and_records_its_failure(
        project: Path) -> None:
    """The default action (the server's): record, run `loopline run` as a child process;
    it fails here for real (its data is gone), so the failure is recorded and the next
    evaluation of the same breach may try again."""
    t0 = _start()
    bad = _labelled_minute(project, right=False)
    for k in range(3):
        bad(t0 + timedelta(minutes=k))
    (project / "data" / "flights_sample.csv").unlink()
    loaded = load_pipeline(project / "pipelines" / "train.yaml")
    results = [monitoring.evaluate(loaded, now=t0 + timedelta(minutes=k + 1)) for k in range(3)]
    decision = results[2]["retrain"]
    assert decision["retrain"] is True and decision["started"] == "background"
    log = Path(decision["log"])
    assert log.parent == project / "artifacts" / "monitoring" / MODEL
    failed = _wait_for(project, "retrain_failed", 1)
    assert "loopline run exited 1" in failed[0]["reason"]
    assert "data source 'data/flights_sample.csv': not found" in log.read_text()
    again = monitoring.evaluate(loaded, now=t0 + timedelta(minutes=4))
    assert again["retrain"]["retrain"] is True  # the failed one no longer counts
    _wait_for(project, "retrain_failed", 2)
    assert len(_events(project, "retrain")) == 2


def _wait_for(project: Path, kind: str, count: int, timeout_s: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(found := _events(project, kind)) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {count} {kind} events after {timeout_s} s")


def test_a_spec_without_serve_or_model_is_refused_with_a_reason(project: Path) -> None:
    drift = load_pipeline(project / "pipelines" / "drift.yaml")
    with pytest.raises(monitoring.MonitoringError, match="has no `serve:` block"):
        monitoring.evaluate(drift)


def test_nothing_served_yet_is_no_verdict(project: Path) -> None:
    loaded = load_pipeline(project / "pipelines" / "train.yaml")
    result = monitoring.evaluate(loaded)
    assert result["version"] == "1" and result["window"]["requests"] == 0
    assert {c: v["breached"] for c, v in result["checks"].items()} == dict.fromkeys(
        ("error_rate", "latency", "feature_missing", "metric"))
    assert result["baseline"]["p99_ms"] is None and result["transitions"] == []


def _alert_receiver(project: Path, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real local HTTP receiver as the spec's webhook route for monitor events."""
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    monkeypatch.setenv("LOOPLINE_TEST_HOOK", server.url_for("/hook"))
    spec = project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text() + """
alerts:
  routes:
    - {to: webhook, secret: LOOPLINE_TEST_HOOK, events: ["monitor.*"]}
secrets:
  LOOPLINE_TEST_HOOK: {secret: loopline-alerts, key: hook}
""")
