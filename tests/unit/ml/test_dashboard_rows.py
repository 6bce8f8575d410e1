"""The dashboard's figures on constructed logs: every number the page shows is one of these."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from loopline.ml import dashboard_rows as rows

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def _log(entries: list[tuple[float, int, float, str]], missing: list[str] | None = None,
         predictions: list[float | None] | None = None) -> pd.DataFrame:
    """(seconds after T0, status, latency ms, version) per row."""
    n = len(entries)
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "time": pd.to_datetime([T0 + timedelta(seconds=s) for s, *_ in entries], utc=True),
        "model_version": [v for *_, v in entries],
        "status": [st for _, st, _, _ in entries],
        "latency_ms": [lat for _, _, lat, _ in entries],
        "prediction": predictions if predictions is not None else
        [None if st >= 500 else 0.5 for _, st, _, _ in entries],
        "missing_features": missing if missing is not None else [""] * n,
    })


@pytest.fixture
def minutes() -> pd.DataFrame:
    """Minute 0: 60 requests, 3 of them 503; minute 1: 30 requests at 1..30 ms; minute 2:
    none; minute 3: 6 requests, one 500, one 422."""
    first = [(i + 0.5, 503 if i in (5, 6, 7) else 200, 10.0, "3") for i in range(60)]
    second = [(60 + 2 * i + 0.5, 200, float(i + 1), "3") for i in range(30)]
    fourth = [(180 + i, 500 if i == 0 else 422 if i == 1 else 200, 100.0 + i, "4")
              for i in range(6)]
    return _log(first + second + fourth)


def test_traffic_per_minute(minutes: pd.DataFrame) -> None:
    per = rows.traffic(minutes, "1min")
    assert list(per.index) == [pd.Timestamp(T0) + pd.Timedelta(minutes=m) for m in range(4)]
    assert per["requests"].tolist() == [60, 30, 0, 6]
    assert per["requests_per_s"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.1])
    assert per["errors"].tolist() == [3, 0, 0, 1]  # a 422 is not an error of the server
    assert per["error_rate"].iloc[0] == pytest.approx(0.05)
    assert per["error_rate"].iloc[1] == 0
    assert math.isnan(per["error_rate"].iloc[2])  # no traffic: no rate, not 0 %
    assert per["error_rate"].iloc[3] == pytest.approx(1 / 6)
    assert per["availability"].iloc[0] == pytest.approx(0.95)


def test_latency_percentiles_per_minute(minutes: pd.DataFrame) -> None:
    per = rows.traffic(minutes, "1min")
    second = np.arange(1, 31, dtype=float)
    assert per["p50_ms"].iloc[1] == pytest.approx(np.percentile(second, 50))
    assert per["p95_ms"].iloc[1] == pytest.approx(np.percentile(second, 95))
    assert per["p99_ms"].iloc[1] == pytest.approx(np.percentile(second, 99))
    assert per["p99_ms"].iloc[0] == pytest.approx(10.0)
    assert math.isnan(per["p95_ms"].iloc[2])


def test_requests_by_version_hands_over(minutes: pd.DataFrame) -> None:
    by_version = rows.requests_by_version(minutes, "1min")
    assert list(by_version.columns) == ["3", "4"]
    assert by_version["3"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert by_version["4"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_totals(minutes: pd.DataFrame) -> None:
    totals = rows.totals(minutes)
    assert totals["requests"] == 96
    assert totals["errors_5xx"] == 4 and totals["errors_4xx"] == 1
    assert totals["error_rate"] == pytest.approx(4 / 96)
    assert totals["availability"] == pytest.approx(92 / 96)
    assert totals["span_s"] == pytest.approx(185 - 0.5)
    assert totals["requests_per_s"] == pytest.approx(96 / 184.5)
    assert totals["versions"] == {"3": 90, "4": 6}
    assert totals["p95_ms"] == pytest.approx(np.percentile(minutes["latency_ms"], 95))
    assert totals["predictions"] == 92


def test_a_batch_request_counts_once_its_rows_each() -> None:
    batch = [(10.0, 200, 7.5, "3")] * 5  # one request: one time, one latency, five rows
    log = _log([*batch, (20.0, 200, 3.0, "3")], predictions=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    totals = rows.totals(log)
    assert totals["requests"] == 2
    assert totals["predictions"] == 6
    assert rows.traffic(log)["requests"].sum() == 2


def test_empty_log() -> None:
    empty = _log([])
    assert rows.traffic(empty).empty
    assert rows.requests_by_version(empty).empty
    totals = rows.totals(empty)
    assert totals["requests"] == 0 and math.isnan(totals["error_rate"])
    assert rows.missing_shares(empty).empty


def test_missing_shares_per_feature() -> None:
    log = _log([(i, 200, 5.0, "3") for i in range(10)],
               missing=["wind_gust", "", "wind_gust,visib", "", "", "", "", "", "", "temp"])
    shares = rows.missing_shares(log)
    assert shares.to_dict() == {"wind_gust": 0.2, "visib": 0.1, "temp": 0.1}
    assert shares.index[0] == "wind_gust"


def test_prediction_histogram_matches_the_server_buckets() -> None:
    counts, edges = rows.prediction_histogram(pd.Series([0.05, 0.15, 0.15, 0.95, 1.0, None]))
    assert edges == pytest.approx(np.linspace(0, 1, 11))  # loopline_prediction's buckets
    assert counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    counts, edges = rows.prediction_histogram(pd.Series([-3.0, 0.0, 12.0]), bins=5)
    assert edges[0] == -3.0 and edges[-1] == 12.0 and counts.sum() == 3


def test_bucket_freq() -> None:
    assert rows.bucket_freq(1800) == "1min"
    assert rows.bucket_freq(24 * 3600) == "5min"
    assert rows.bucket_freq(7 * 86400) == "1h"


def test_server_figures_from_real_prometheus_text() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    registry = CollectorRegistry()
    requests = Counter("loopline_requests", "", ["model", "version", "route", "endpoint",
                                                 "status"], registry=registry)
    requests.labels("m", "4", "champion", "predict", "200").inc(95)
    requests.labels("m", "4", "champion", "predict", "503").inc(5)
    requests.labels("other", "1", "champion", "predict", "200").inc(1000)
    predictions = Counter("loopline_predictions", "", ["model", "version", "route"],
                          registry=registry)
    predictions.labels("m", "4", "champion").inc(400)
    predictions.labels("other", "1", "champion").inc(99)
    cache = Counter("loopline_feature_cache", "", ["model", "result"], registry=registry)
    cache.labels("m", "hit").inc(30)
    cache.labels("m", "miss").inc(10)
    Gauge("loopline_workers", "", ["model"], registry=registry).labels("m").set(2)
    Gauge("loopline_model_info", "", ["model", "version", "route"],
          registry=registry).labels("m", "4", "champion").set(1)
    Gauge("loopline_drift_psi", "", ["model", "feature"],
          registry=registry).labels("m", 'odd "name"').set(0.2)
    Gauge("loopline_live_metric", "", ["model", "version", "metric"],
          registry=registry).labels("m", "4", "roc_auc").set(0.71)
    Gauge("process_cpu_seconds_total", "", registry=registry).set(2.0)
    Gauge("process_resident_memory_bytes", "", registry=registry).set(200 * 2**20)
    text = generate_latest(registry).decode()
    assert prometheus_client  # the real exposition format, not a hand-written imitation

    figures = rows.server_figures(rows.parse_prometheus(text), "m")
    assert figures.requests == 100 and figures.requests_5xx == 5
    assert figures.predictions == 400  # the other model's rows are not ours
    assert figures.cache_hit_rate == pytest.approx(0.75)
    assert figures.workers == 2
    assert figures.cpu_s_per_1000 == pytest.approx(1000 * 2.0 / 400)
    assert figures.memory_bytes == 200 * 2**20
    assert figures.versions == ["4"]
    assert figures.drift_psi == {'odd "name"': pytest.approx(0.2)}
    assert figures.live_metric == {"v4 roc_auc": pytest.approx(0.71)}
    assert figures.gpu_util is None


def test_server_figures_without_cache_or_cpu() -> None:
    figures = rows.server_figures(rows.parse_prometheus(
        '# HELP x\nloopline_predictions_total{model="m",version="1",route="champion"} 10\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 40\nDCGM_FI_DEV_GPU_UTIL{gpu="1"} 60 1700000000\n'), "m")
    assert figures.cache_hit_rate is None and figures.cpu_s_per_1000 is None
    assert figures.gpu_util == 50


def test_labelled_metric_per_version_and_bucket() -> None:
    rng = np.random.default_rng(3)
    n = 240
    log = _log([(i * 15.0, 200, 5.0 + i, "3" if i < 120 else "4") for i in range(n)])
    labels = rng.random(n) < 0.3
    # v3 ranks perfectly, v4 at random: the live metric must tell them apart
    log["prediction"] = np.where(labels, 0.6, 0.4)
    log.loc[120:, "prediction"] = rng.random(n - 120)
    log["label"] = labels
    log.loc[::7, "label"] = None  # not every label has arrived
    log.loc[5, "status"] = 500
    whole = rows.labelled_metric(log, "roc_auc", min_labels=30)
    assert whole.loc["roc_auc", "3"] == pytest.approx(1.0)
    assert 0.3 < whole.loc["roc_auc", "4"] < 0.7
    per = rows.labelled_metric(log, "roc_auc", freq="30min", min_labels=30)
    assert per["3"].dropna().tolist() == pytest.approx([1.0])  # 0-30 min; the rest < 30 rows
    assert rows.labelled_metric(log.drop(columns="label")).empty
    assert rows.labelled_metric(log, min_labels=1000).isna().all().all()


def test_requests_per_s_is_not_inflated_by_two_close_requests() -> None:
    totals = rows.totals(_log([(0.0, 200, 5.0, "1"), (0.05, 200, 6.0, "1")]))
    assert totals["requests_per_s"] == pytest.approx(2 / 60)
    assert rows.totals(_log([(0.0, 200, 5.0, "1")]))["requests_per_s"] == pytest.approx(1 / 60)
