"""Live checks on constructed windows of the prediction log, and the hold rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from loopline.integrations import prediction_log
from loopline.ml import live_checks as lc

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _window(n: int, *, errors: int = 0, latency: float | list[float] = 5.0, version: str = "3",
            missing: list[str] | None = None, start: datetime = T0,
            **columns: object) -> pd.DataFrame:
    latencies = latency if isinstance(latency, list) else [latency] * n
    frame = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "time": [start + timedelta(seconds=i) for i in range(n)],
        "model_version": version, "route": "champion",
        "status": [500] * errors + [200] * (n - errors),
        "latency_ms": latencies, "prediction": 0.5,
        "missing_features": missing if missing is not None else [""] * n,
        "error": None, **columns})
    return frame


def test_the_log_columns_are_the_prediction_logs() -> None:
    assert lc.LOG_COLUMNS == prediction_log.LOG_COLUMNS


def test_error_rate_counts_5xx_only_and_needs_min_requests() -> None:
    window = _window(200, errors=3)
    window.loc[10:14, "status"] = 422  # the caller's fault, not an error of the server
    result = lc.error_rate(window, 0.01, min_requests=50)
    assert (result.value, result.threshold, result.breached) == (0.015, 0.01, True)
    assert result.figures == {"requests": 200, "errors": 3}
    assert "3 of 200 requests failed" in result.detail
    assert lc.error_rate(_window(200, errors=2), 0.01, 50).breached is False
    quiet = lc.error_rate(_window(20, errors=20), 0.01, min_requests=50)
    assert quiet.breached is None and quiet.value is None
    assert quiet.detail == "20 requests (< min_requests 50): no verdict"


def test_latency_p99_of_the_served_versions_successes_vs_ratio_x_baseline() -> None:
    latencies = [5.0] * 97 + [30.0, 40.0, 50.0]
    window = _window(100, latency=latencies)
    expected = float(np.percentile(latencies, 99))
    result = lc.latency(window, "3", ratio=2.0, baseline_ms=10.0, min_requests=50)
    assert result.value == pytest.approx(expected) and expected > 20
    assert (result.threshold, result.breached) == (20.0, True)
    assert lc.latency(window, "3", 2.0, 30.0, 50).breached is False
    # Another version's rows and failed requests are not the served version's latency.
    slow_other = pd.concat([_window(100), _window(100, latency=500.0, version="2"),
                            _window(100, errors=100, latency=900.0)])
    assert lc.latency(slow_other, "3", 2.0, 10.0, 50).value == pytest.approx(5.0)
    no_baseline = lc.latency(window, "3", 2.0, None, 50)
    assert no_baseline.breached is None and no_baseline.value == pytest.approx(expected)
    assert "no baseline yet" in no_baseline.detail
    assert lc.latency(_window(10), "3", 2.0, 10.0, 50).breached is None


def test_the_baseline_is_the_versions_first_window() -> None:
    first = _window(120, latency=[4.0] * 119 + [9.0])  # 120 requests over 2 minutes
    later = _window(120, latency=80.0, start=T0 + timedelta(minutes=10))
    other = _window(120, latency=1.0, version="2", start=T0 - timedelta(minutes=30))
    log = pd.concat([other, first, later])
    now = T0 + timedelta(minutes=15)
    found = lc.latency_baseline(log, "3", window_s=300, min_requests=50, now=now)
    assert found is not None
    assert found["p99_ms"] == pytest.approx(np.percentile([4.0] * 119 + [9.0], 99))
    assert (found["requests"], found["first_seen"]) == (120, T0.isoformat())
    # Asked before the first window is over: ask again later.
    assert lc.latency_baseline(log, "3", 300, 50, T0 + timedelta(minutes=2)) is None
    sparse = lc.latency_baseline(log, "3", 300, min_requests=500, now=now)
    assert sparse is not None and sparse["p99_ms"] is None and sparse["requests"] == 120
    assert lc.latency_baseline(log, "9", 300, 50, now) is None


def test_feature_missing_names_the_worst_feature_from_the_list_and_nulls() -> None:
    n = 100
    temp = [20.0] * (n - 3) + [None] * 3
    missing = ["wind_gust,temp"] * 8 + ["wind_gust"] * 2 + [""] * (n - 10)
    window = _window(n, missing=missing, temp=temp, wind_gust=1.0, distance=500.0)
    features = ["temp", "wind_gust", "distance"]
    result = lc.feature_missing(window, 0.05, min_requests=50, features=features)
    # temp: 8 listed + 3 null rows (none overlapping) = 11 %; wind_gust: 10 listed.
    assert result.figures["missing"] == {"temp": pytest.approx(0.11),
                                         "wind_gust": pytest.approx(0.10)}
    assert (result.figures["feature"], result.value, result.breached) == \
        ("temp", pytest.approx(0.11), True)
    assert result.detail.startswith("temp missing in 11.0% of 100 requests")
    assert lc.feature_missing(window, 0.2, 50, features).breached is False
    # A raw field the model never reads may be null: only `features` are checked for nulls
    # (without a list, every column the log holds beside its own).
    window["tailnum"] = None
    assert lc.feature_missing(window, 0.05, 50, features).figures["feature"] == "temp"
    assert lc.feature_missing(window, 0.05, 50).figures["feature"] == "tailnum"
    # Refused for missing features (422 under `refuse`) counts; a server error does not.
    refused = _window(60, missing=["temp"] * 60, temp=None)
    refused["status"] = 422
    assert lc.feature_missing(refused, 0.05, 50).value == 1.0
    failed = _window(60, errors=60, temp=None)
    assert lc.feature_missing(failed, 0.05, 50).breached is None


def test_metric_on_labelled_predictions_vs_the_evaluation() -> None:
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.random(n) < 0.3
    good = np.clip(truth * 0.5 + rng.random(n) * 0.5, 0, 1)  # informative scores
    window = _window(n, label=truth)
    window["prediction"] = good
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(truth, good)
    result = lc.metric(window, "3", "classification", "roc_auc", evaluation=auc + 0.01,
                       max_drop=0.05, min_labels=200)
    assert result.value == pytest.approx(auc)
    assert (result.breached, result.threshold) == (False, pytest.approx(auc - 0.04))
    assert result.figures["labelled"] == n and result.figures["drop"] == pytest.approx(0.01)
    worse = lc.metric(window, "3", "classification", "roc_auc", auc + 0.2, 0.05, 200)
    assert worse.breached is True
    # Unlabelled rows do not count; too few labels: no verdict.
    window.loc[window.index[:300], "label"] = None
    few = lc.metric(window, "3", "classification", "roc_auc", auc, 0.05, min_labels=200)
    assert few.breached is None and "100 labelled predictions" in few.detail
    assert lc.metric(_window(10), "3", "classification", "roc_auc", 0.7, 0.05, 1).breached \
        is None  # no label column at all
    lower = lc.metric(_window(300, label=[1.0] * 300), "3", "regression", "rmse", 0.1, 0.05,
                      200, higher_is_better=False)
    assert lower.value == pytest.approx(0.5) and lower.threshold == pytest.approx(0.15)
    assert lower.breached is True


def _run(verdicts: list[bool | None], hold: int = 3) -> tuple[list[str], list[dict]]:
    state: dict = {}
    seen, transitions = [], []
    for i, verdict in enumerate(verdicts):
        state, moved = lc.apply_hold(state, {"error_rate": verdict}, hold, f"t{i}")
        seen.append(state["error_rate"]["state"])
        transitions += moved
    return seen, transitions


def test_three_breaches_in_a_row_flip_once_and_three_healthy_recover_once() -> None:
    seen, transitions = _run([True, True, True, True, True, False, False, False, False])
    assert seen == ["healthy", "healthy", "breached", "breached", "breached", "breached",
                    "breached", "healthy", "healthy"]
    assert transitions == [
        {"check": "error_rate", "from": "healthy", "to": "breached", "after": 3},
        {"check": "error_rate", "from": "breached", "to": "healthy", "after": 3}]
    state, _ = lc.apply_hold({}, {"error_rate": True}, 3, "t0")
    for i in (1, 2):
        state, _ = lc.apply_hold(state, {"error_rate": True}, 3, f"t{i}")
    assert state["error_rate"] == {"state": "breached", "streak": 0, "since": "t2"}


def test_a_single_bad_or_quiet_evaluation_never_flips() -> None:
    seen, transitions = _run([True, False, True, True, False, True, None, True, True])
    assert transitions == [] and set(seen) == {"healthy"}
    # Breached: one good minute (or one without traffic) does not resolve it.
    seen, transitions = _run([True, True, True, False, True, False, False, None, False])
    assert [t["to"] for t in transitions] == ["breached"]
    assert seen[-1] == "breached"
    _, once = _run([True], hold=1)
    assert [t["to"] for t in once] == ["breached"]

