"""deploy/grafana/loopline-serving.json: importable (a datasource input, a `model` variable),
the four rows, only the metric names the server exports, and — with a real Prometheus
scraping the server's real metrics object — every query returns data."""

from __future__ import annotations

import http.server
import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "loopline-serving.json"
DS = "${DS_PROMETHEUS}"
# The contract of issue 14 (docs/serving.md): what the server exports. Histograms add
# _bucket, _sum and _count; process_* come from prometheus_client; DCGM from NVIDIA's exporter.
COUNTERS = ("loopline_requests_total", "loopline_predictions_total",
            "loopline_feature_missing_total", "loopline_feature_cache_total",
            "loopline_model_swaps_total", "process_cpu_seconds_total")
HISTOGRAMS = ("loopline_request_latency_seconds", "loopline_prediction")
GAUGES = ("loopline_model_info", "loopline_workers", "loopline_drift_psi",
          "loopline_live_metric", "process_resident_memory_bytes")
EXTERNAL = ("DCGM_FI_DEV_GPU_UTIL",)
ALLOWED = {*COUNTERS, *GAUGES, *EXTERNAL,
           *(f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count"))}
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "changes",
                "histogram_quantile", "scalar", "vector", "by", "without", "on", "ignoring",
                "group_left", "group_right", "or", "and", "unless", "bool", "offset"}
MODEL = "flights-late-arrival"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query, the annotations' too."""
    found = [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]
    return found + [(a["name"], a["expr"]) for a in board["annotations"]["list"] if "expr" in a]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: strip strings, label matchers, ranges,
    grouping clauses and variables; what is left that is not a function or keyword."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = {m.group() for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text)
             if not text[m.end():].lstrip().startswith("(")}  # a call: a function
    return names - PROMQL_WORDS


def test_metric_name_parser() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{model="$model",'
                        'x=~"5.."}[$__rate_interval])))') == {"a_bucket"}
    assert metric_names("sum(rate(b_total[1m]) * on(instance) group_left() max by "
                        "(instance) (c{m=\"x\"})) / 1e3") == {"b_total", "c"}


def test_it_imports_with_a_datasource_input_and_a_model_variable(
        dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] == "loopline-serving"
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == \
        [("DS_PROMETHEUS", "datasource", "prometheus")]
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "model" and variable["datasource"]["uid"] == DS
    assert variable["definition"] == "label_values(loopline_model_info, model)"
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": DS}, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == DS for t in panel["targets"])
    uids = set(re.findall(r'"uid": "([^"]*)"', DASHBOARD.read_text()))
    assert uids == {DS, "-- Grafana --", "loopline-serving"}  # no datasource of one install


def test_rows_and_panels(dashboard: dict[str, Any]) -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"],
                                                            p["gridPos"]["x"])):
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel)
    assert list(rows) == ["Traffic & health", "Model health", "Infrastructure", "Cost"]
    exprs = {row: " ".join(t["expr"] for p in ps for t in p["targets"])
             for row, ps in rows.items()}
    assert "loopline_requests_total" in exprs["Traffic & health"]
    assert 'status=~"5.."' in exprs["Traffic & health"]
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(loopline_request_latency_seconds_" \
               "bucket" in exprs["Traffic & health"]
    for name in ("loopline_drift_psi", "loopline_live_metric", "loopline_prediction_bucket",
                 'loopline_feature_cache_total{model="$model",result="hit"}',
                 "loopline_feature_missing_total"):
        assert name in exprs["Model health"], name
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "loopline_workers", "DCGM_FI_DEV_GPU_UTIL"):
        assert name in exprs["Infrastructure"], name
    assert exprs["Cost"].count("1000 * ") == 2 and "loopline_predictions_total" in exprs["Cost"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_queries_read_only_the_exported_metrics(dashboard: dict[str, Any]) -> None:
    for title, expr in queries(dashboard):
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= ALLOWED, (title, names - ALLOWED)
        loopline = [n for n in names if n.startswith("loopline_")]
        if loopline:  # one model's panels: every loopline series filtered by $model
            assert expr.count('model="$model"') >= len(re.findall(r"loopline_\w+", expr)), \
                (title, expr)


# -- a real Prometheus over the real server's metrics ------------------------------------------

PROMETHEUS = "/usr/bin/prometheus"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture
def served_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """`loopline serve`'s metrics object behind /metrics, with traffic flowing."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from loopline.serving.metrics import Metrics

    m = Metrics()
    m.info.labels(MODEL, "4", "champion").set(1)
    m.workers.labels(MODEL).set(2)
    m.swaps.labels(MODEL).inc()
    for feature, psi in (("temp", 0.19), ("distance", 0.01)):
        m.drift_psi.labels(MODEL, feature).set(psi)
    m.live_metric.labels(MODEL, "4", "roc_auc").set(0.71)
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.wait(0.02):
            i += 1
            status = "503" if i % 25 == 0 else "422" if i % 40 == 0 else "200"
            m.requests.labels(MODEL, "4", "champion", "predict", status).inc()
            m.latency.labels(MODEL, "4", "champion", "predict").observe(0.004 + (i % 7) / 1000)
            if status == "200":
                m.predictions.labels(MODEL, "4", "champion").inc()
                m.prediction.labels(MODEL, "4").observe((i % 10) / 10 + 0.05)
                m.cache.labels(MODEL, "hit" if i % 4 else "miss").inc()
            if i % 9 == 0:
                m.missing.labels(MODEL, "wind_gust").inc()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = m.exposition()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threads = [threading.Thread(target=server.serve_forever, daemon=True),
               threading.Thread(target=traffic, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def prometheus(served_metrics: int, tmp_path: Path) -> Iterator[str]:
    from tests.support.services import free_port

    if not shutil.which(PROMETHEUS):
        pytest.skip(f"{PROMETHEUS} is missing: apt-get install prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "loopline",
                            "static_configs": [{"targets": [f"127.0.0.1:{served_metrics}"]}]}]}))
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                samples = _get(f"{url}/api/v1/query?query=" + urllib.parse.quote(
                    "count_over_time(loopline_requests_total[1m])"))["data"]["result"]
                if samples and min(int(s["value"][1]) for s in samples) >= 6:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Prometheus scraped nothing in 60 s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_every_query_returns_data_from_a_real_prometheus(dashboard: dict[str, Any],
                                                         prometheus: str) -> None:
    empty = []
    for title, expr in queries(dashboard):
        # What Grafana substitutes: the variable, its rate interval (4 scrapes) and range.
        query = (expr.replace("$model", MODEL).replace("$__rate_interval", "5s")
                 .replace("$__range", "1m"))
        answer = _get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}")
        assert answer["status"] == "success", (title, answer)
        values = [float(s["value"][1]) for s in answer["data"]["result"]]
        if "DCGM" in expr or (title == "Model swaps" and "changes(" in expr):
            continue  # no GPU here; a swap annotation marks only the minute it happened
        if not values or not all(math.isfinite(v) for v in values):
            empty.append((title, query, values))
    assert not empty, empty
