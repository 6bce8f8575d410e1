"""A realistic prediction log for `loopline dashboard`: tests and the docs' screenshot.

Half an hour of late-arrival predictions: version 3 hands over to version 4 after 18 minutes
(an alias move), latency is log-normal with a tail, a short burst of 5xx answers, a few 4xx
refusals, and the weather feature the online store sometimes lacks.

    .venv/bin/python -m tests.support.dashboard_demo docs/images/dashboard.png
renders the page from a demo project (with the server's real metrics object behind a local
/metrics, counted as the log's traffic was) and screenshots it with headless Chromium.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = "/usr/bin/chromium"
MODEL = "flights-late-arrival"
FEATURES = ("distance", "temp", "humid", "wind_speed", "precip", "visib")
OFTEN_MISSING = "wind_gust"
START = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def demo_rows(start: datetime = START, minutes: int = 30, n: int = 600,
              seed: int = 14) -> list[dict[str, Any]]:
    """`n` log rows over `minutes`: two versions, some 5xx, some 4xx, some missing features."""
    from loopline.integrations import prediction_log

    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.uniform(0, minutes * 60, n))
    out = []
    for i, offset in enumerate(offsets):
        moment = start + timedelta(seconds=float(offset))
        version = "3" if offset < 18 * 60 else "4"
        status = 200
        if 21 * 60 <= offset < 23 * 60 and rng.random() < 0.3:
            status = 503  # the online store went away for two minutes
        elif rng.random() < 0.015:
            status = 422
        latency = float(rng.lognormal(np.log(6.0), 0.35) + (40 * rng.random()
                                                            if rng.random() < 0.02 else 0))
        missing = [OFTEN_MISSING] if rng.random() < 0.08 else []
        if rng.random() < 0.02:
            missing.append("visib")
        values: dict[str, Any] = {name: float(rng.normal(10, 3)) for name in FEATURES}
        values.update({"carrier": str(rng.choice(["UA", "B6", "EV", "DL"])),
                       "origin": str(rng.choice(["EWR", "JFK", "LGA"]))})
        ok = status == 200
        prediction = float(rng.beta(2, 5 if version == "3" else 4)) if ok else None
        out.append(prediction_log.row(
            f"req-{i:05d}", moment, version, "champion", status, latency, prediction,
            missing if ok else (), None if status < 500 and ok else
            ("online store unavailable" if status == 503 else "inputs.distance: missing"),
            values))
    return out


def write_log(folder: str, log_rows: list[dict[str, Any]], per_file: int = 100) -> list[str]:
    """The rows as the server writes them: one Parquet file per flush, per hour partition."""
    from loopline.integrations import prediction_log

    written = []
    for i in range(0, len(log_rows), per_file):
        chunk = log_rows[i:i + per_file]
        for hour in prediction_log._by_hour(chunk):
            written.append(prediction_log.write_file(folder, hour, f"demo-{i:05d}-"
                                                     f"{hour[0]['time']:%H}.parquet"))
    return written


DRIFT_SUMMARY: dict[str, Any] = {
    "champion": {"name": MODEL, "version": "4"}, "drift": True, "action": "alert",
    "share_drifted": 2 / 7, "reasons": ["drift in temp, humid"], "warnings": [],
    "rows": {"reference": 160_000, "current": 24_000},
    "window": ["predictions/flights-late-arrival (2026-11-25 07:00 to 2026-11-26 07:00)"],
    "columns": {
        "distance": {"method": "psi", "score": 0.012, "threshold": 0.1,
                     "retrain_threshold": 0.25, "drifted": False, "severity": "none"},
        "temp": {"method": "psi", "score": 0.19, "threshold": 0.1, "retrain_threshold": 0.25,
                 "drifted": True, "severity": "warn"},
        "humid": {"method": "psi", "score": 0.13, "threshold": 0.1, "retrain_threshold": 0.25,
                  "drifted": True, "severity": "warn"},
        "wind_speed": {"method": "psi", "score": 0.04, "threshold": 0.1,
                       "retrain_threshold": 0.25, "drifted": False, "severity": "none"},
        "precip": {"method": "psi", "score": 0.07, "threshold": 0.1, "retrain_threshold": 0.25,
                   "drifted": False, "severity": "none"},
        "visib": {"method": "psi", "score": 0.02, "threshold": 0.1, "retrain_threshold": 0.25,
                  "drifted": False, "severity": "none"},
        "carrier": {"method": "psi", "score": 0.006, "threshold": 0.1,
                    "retrain_threshold": 0.25, "drifted": False, "severity": "none"},
    },
    "prediction": {"column": "prediction", "method": "psi", "score": 0.08, "threshold": 0.1,
                   "retrain_threshold": 0.25, "drifted": False, "severity": "none"},
    "performance": {"metric": "roc_auc", "labelled_rows": 4_210, "current": 0.7012,
                    "evaluation": 0.7188, "max_drop": 0.05, "degraded": False},
}

SPEC = """name: flights
registry:
  model_name: {model}
steps:
  ingest:
    component: ingest.table
    params: {{source: data.csv}}
artifacts:
  root: artifacts
serve:
  workers: 2
  monitoring: {{error_rate: 0.01, feature_missing: 0.05}}
"""

DRIFT_SPEC = """name: flights_drift
registry:
  model_name: {model}
steps:
  drift:
    component: drift.evidently
retrain:
  pipeline: pipelines/flights.yaml
  step: drift
artifacts:
  root: artifacts
"""


def demo_project(root: Path, log_rows: list[dict[str, Any]] | None = None,
                 drift: dict[str, Any] | None = None) -> Path:
    """A project with a served spec, its drift spec, a logged half hour and a committed drift
    summary; returns the serving spec's path."""
    from loopline.integrations import prediction_log
    from loopline.runtime.store import open_store

    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    spec = root / "pipelines" / "flights.yaml"
    spec.write_text(SPEC.format(model=MODEL))
    (root / "pipelines" / "flights_drift.yaml").write_text(DRIFT_SPEC.format(model=MODEL))
    log_rows = demo_rows() if log_rows is None else log_rows
    write_log(prediction_log.log_folder(str(root / "artifacts"), MODEL), log_rows)
    store = open_store("artifacts", root)
    staging = store.staging("flights_drift", "drift")
    summary = json.dumps(DRIFT_SUMMARY if drift is None else drift)
    (staging / "drift.json").write_text(summary)
    (staging / "report.html").write_text("<html></html>")
    store.commit("flights_drift", "drift", staging, {
        "step": "drift", "finished": "2026-11-26T07:35:00Z",
        "outputs": {"summary": {"path": "drift.json", "hash": "demo", "size": len(summary)},
                    "report": {"path": "report.html", "hash": "demo", "size": 13}}})
    return spec


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2000,
               timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with everything that would reach the network switched off."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=5000",
             "--run-all-compositor-stages-before-draw", f"--user-data-dir={profile}",
             f"--screenshot={png}", f"--window-size={width},{height}",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "HOME": profile})


@contextlib.contextmanager
def metrics_endpoint(log_rows: list[dict[str, Any]]) -> Iterator[str]:
    """The server's real metrics object, counted as the log's traffic was, behind /metrics
    on 127.0.0.1 (process CPU and memory are this process's own)."""
    from loopline.serving.metrics import Metrics

    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics = Metrics()
    rng = np.random.default_rng(16)
    for row in log_rows:
        version = row["model_version"]
        metrics.requests.labels(MODEL, version, "champion", "predict", str(row["status"])).inc()
        metrics.latency.labels(MODEL, version, "champion", "predict").observe(
            row["latency_ms"] / 1000)
        if row["prediction"] is not None:
            metrics.predictions.labels(MODEL, version, "champion").inc()
            metrics.cache.labels(MODEL, "hit" if rng.random() < 0.62 else "miss").inc()
    metrics.workers.labels(MODEL).set(2)
    metrics.info.labels(MODEL, log_rows[-1]["model_version"], "champion").set(1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str]) -> int:
    """Render the demo page and screenshot it: `python -m tests.support.dashboard_demo OUT.png`."""
    from loopline.serving import dashboard
    from loopline.spec.load import load_spec

    png = Path(argv[0] if argv else "docs/images/dashboard.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        log_rows = demo_rows()
        spec = demo_project(Path(tmp), log_rows)
        write_labels(Path(tmp), log_rows)
        page = Path(tmp) / "dashboard.html"
        state = Path(tmp) / "artifacts" / "monitoring" / MODEL
        state.mkdir(parents=True)
        (state / "live_state.json").write_text(json.dumps(LIVE_STATE))
        with metrics_endpoint(log_rows) as url:
            sources = dashboard.Sources(since=START - timedelta(minutes=5),
                                        until=START + timedelta(minutes=35), metrics_url=url)
            dashboard.build(load_spec(spec), page, sources, now=START + timedelta(minutes=35))
        png.parent.mkdir(parents=True, exist_ok=True)
        done = screenshot(page, png, height=int(argv[1]) if len(argv) > 1 else 2000)
        if done.returncode != 0 or not png.is_file():
            print(done.stderr, file=sys.stderr)
            return 1
        if len(argv) > 2:
            shutil.copy(page, argv[2])
    print(png)
    return 0


LIVE_STATE: dict[str, Any] = {
    "model": MODEL, "version": "4", "evaluated_at": "2026-11-26T07:30:00+00:00", "hold": 3,
    "checks": {
        "error_rate": {"check": "error_rate", "value": 0.021, "threshold": 0.01,
                       "breached": True, "detail": "2.1% of 97 requests answered 5xx",
                       "state": "breached", "streak": 0, "since": "2026-11-26T07:23:00+00:00"},
        "latency": {"check": "latency", "value": 11.8, "threshold": 14.6, "breached": False,
                    "detail": "p99 11.8 ms vs baseline 7.3 ms", "state": "healthy",
                    "streak": 0, "since": None},
        "feature_missing": {"check": "feature_missing", "value": 0.083, "threshold": 0.05,
                            "breached": True, "detail": "wind_gust missing in 8.3%",
                            "state": "breached", "streak": 0,
                            "since": "2026-11-26T07:12:00+00:00"},
        "metric": {"check": "metric", "value": None, "threshold": 0.6688, "breached": None,
                   "detail": "112 labelled predictions of v4 (< min_labels 200): no verdict",
                   "metric": "roc_auc", "state": "healthy", "streak": 0, "since": None},
    },
}


def write_labels(root: Path, log_rows: list[dict[str, Any]], share: float = 0.6,
                 seed: int = 15) -> int:
    """Labels for a share of the answered predictions, as `loopline feedback` keeps them
    (by request id); drawn from the prediction itself, so the live ROC AUC is real (~0.7)."""
    import pandas as pd

    from loopline.integrations import prediction_labels

    rng = np.random.default_rng(seed)
    answered = [r for r in log_rows if r["prediction"] is not None and rng.random() < share]
    frame = pd.DataFrame({"request_id": [r["request_id"] for r in answered],
                          "label": [bool(rng.random() < r["prediction"]) for r in answered]})
    prediction_labels.write(prediction_labels.labels_folder(str(root / "artifacts"), MODEL),
                            frame)
    return len(frame)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
