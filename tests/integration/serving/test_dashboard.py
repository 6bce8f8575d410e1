"""`loopline dashboard`: a real log on disk, a committed drift summary, kept labels and the
live checks' state in, one self-contained page out, opened in a real headless Chromium."""

from __future__ import annotations

import argparse
import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import IN_CI
from tests.support import dashboard_demo as demo

SINCE, UNTIL = demo.START - timedelta(minutes=5), demo.START + timedelta(minutes=35)
WINDOW = ["--since", f"{SINCE:%Y-%m-%dT%H:%M}", "--until", f"{UNTIL:%Y-%m-%dT%H:%M}"]


def dashboard(spec: Path, out: Path, *extra: str) -> tuple[int, str]:
    """The command as `loopline dashboard` runs it (its own parser: the command table is the
    CLI package's), stdout captured."""
    import contextlib
    import io

    from loopline.cli import dashboard as command

    parser = argparse.ArgumentParser(prog="loopline")
    command.register(parser.add_subparsers())
    args = parser.parse_args(["dashboard", str(spec), "-o", str(out), *extra])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = args.fn(args)
    return code, stdout.getvalue()


def figure(page: str, key: str) -> str:
    """The value text of the first tile `key`."""
    match = re.search(rf'data-figure="{key}">.*?<div class="value">(.*?)</div>', page)
    assert match, f"no {key} tile"
    return match.group(1)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return demo.demo_rows()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> Path:
    root = tmp_path_factory.mktemp("served")
    spec = demo.demo_project(root, rows)
    demo.write_labels(root, rows)
    state = root / "artifacts" / "monitoring" / demo.MODEL
    state.mkdir(parents=True)
    (state / "live_state.json").write_text(json.dumps(demo.LIVE_STATE))
    return spec


@pytest.fixture(scope="module")
def page(project: Path) -> Path:
    out = project.parent.parent / "dashboard.html"
    code, stdout = dashboard(project, out, *WINDOW)
    assert code == 0
    assert stdout.strip() == str(out.resolve())  # says where the page is
    return out


def test_traffic_row_figures(page: Path, rows: list[dict[str, Any]]) -> None:
    html = page.read_text()
    status = np.array([r["status"] for r in rows])
    latency = np.array([r["latency_ms"] for r in rows])
    errors = int(((status >= 500) & (status < 600)).sum())
    assert 0 < errors < len(rows)
    assert figure(html, "requests") == f"{len(rows):,}"
    assert figure(html, "error_rate") == f"{errors / len(rows) * 100:.2f}%"
    assert figure(html, "availability") == f"{(1 - errors / len(rows)) * 100:.3f}%"
    assert figure(html, "p95_ms") == f"{np.percentile(latency, 95):.1f} ms"
    versions = {v: sum(r["model_version"] == v for r in rows) for v in ("3", "4")}
    assert f"v3: {versions['3']:,}, v4: {versions['4']:,}" in html
    span = (rows[-1]["time"] - rows[0]["time"]).total_seconds()
    assert figure(html, "requests_per_s") == f"{len(rows) / max(span, 60):.2f}"
    assert "Requests/s per model version (per 1min)" in html
    assert 'class="tile bad" data-figure="error_rate"' in html  # above the 1 % limit


def test_model_health_row(page: Path, rows: list[dict[str, Any]], project: Path) -> None:
    from sklearn.metrics import roc_auc_score

    html = page.read_text()
    assert figure(html, "drift_action") == "alert"
    for feature, column in demo.DRIFT_SUMMARY["columns"].items():
        assert f"<td>{feature}</td><td>psi</td><td>{column['score']:.4f}</td>" in html
    assert "flights_drift.yaml step drift, finished 2026-11-26T07:35:00Z" in html
    answered = [r for r in rows if r["prediction"] is not None]
    missing = sum(bool(r["missing_features"]) for r in answered) / len(rows)
    assert figure(html, "missing_share") == f"{missing * 100:.1f}%"
    assert figure(html, "mean_prediction") == f"{np.mean([r['prediction'] for r in answered]):.4f}"
    assert "Prediction distribution" in html
    # the live metric from kept labels, per version, as sklearn computes it
    import pandas as pd

    from loopline.integrations import prediction_labels

    folder = prediction_labels.labels_folder(str(project.parent.parent / "artifacts"),
                                             demo.MODEL)
    labels = pd.concat(prediction_labels.read(folder)).set_index("request_id")["label"]
    for version in ("3", "4"):
        mine = [r for r in answered if r["model_version"] == version
                and r["request_id"] in labels.index]
        auc = roc_auc_score([bool(labels[r["request_id"]]) for r in mine],
                            [r["prediction"] for r in mine])
        assert f"Live roc_auc v{version}</div><div class=\"value\">{auc:.4f}" in html
    assert "Live checks (evaluated 11-26 07:30 UTC)" in html
    assert "<td>feature_missing</td><td>breached</td>" in html
    assert figure(html, "cache_hit_rate") == "–"
    assert "not in the log: pass --metrics-url" in html


def test_infrastructure_and_cost_say_where_they_would_come_from(page: Path) -> None:
    html = page.read_text()
    assert figure(html, "workers") == "2"  # serve.workers, declared
    assert figure(html, "cpu_s_per_1000") == "–"
    assert "CPU is not in the log: pass --metrics-url" in html
    for section in ("traffic", "model", "infrastructure", "cost"):
        assert f'<section id="{section}">' in html


def test_the_page_reaches_for_nothing_outside(page: Path) -> None:
    html = page.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    references = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + \
        re.findall(r"url\(([^)]*)\)", html)
    assert references, "the charts are images"
    assert all(ref.startswith("data:image/png;base64,") for ref in references), references
    assert not re.search(r"https?://", html)


def chromium() -> str:
    if shutil.which(demo.CHROMIUM):
        return demo.CHROMIUM
    if IN_CI:
        pytest.fail(f"{demo.CHROMIUM} is missing: apt-get install chromium (the dashboard "
                    "page is checked in a real browser)")
    pytest.skip(f"{demo.CHROMIUM} is missing: apt-get install chromium")


@pytest.mark.slow
def test_chromium_draws_the_page(page: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    browser = chromium()
    assert browser == demo.CHROMIUM
    png = tmp_path / "dashboard.png"
    done = demo.screenshot(page, png, width=1400, height=2000)
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.stat().st_size > 50_000  # a drawn page, not an error tab
    with Image.open(png) as shot:
        assert shot.format == "PNG" and shot.size == (1400, 2000)
        image = shot.convert("RGB")
    assert image.getpixel((5, 5)) == (0x1D, 0x23, 0x30)  # the header band drew (inline CSS)
    assert image.getpixel((5, 400)) == (0xF4, 0xF5, 0xF7)  # the page background
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # charts, text, tiles: not one colour
    assert max(ImageStat.Stat(image).stddev) > 20
    # the charts' blue (#3366cc) is on screen: the data: images decoded and drew
    blue = sum(n for n, rgb in colours if rgb == (0x33, 0x66, 0xCC))
    assert blue > 2000


def test_an_empty_window_says_so(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    code, _ = dashboard(project, out, "--since", "2020-01-01", "--until", "2020-01-02")
    assert code == 0
    html = out.read_text()
    assert "No predictions logged between 2020-01-01 00:00 and 2020-01-02 00:00 UTC" in html
    assert figure(html, "drift_action") == "alert"  # the drift summary is still shown


def test_a_bad_window_is_one_error_line(project: Path, tmp_path: Path) -> None:
    from loopline.cli.common import CommandError

    with pytest.raises(CommandError, match="neither a duration"):
        dashboard(project, tmp_path / "x.html", "--since", "yesterday-ish")
    assert not (tmp_path / "x.html").exists()
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.fixture
def metrics_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """The real server's metrics object, with traffic, behind a real HTTP /metrics."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from loopline.serving.metrics import Metrics

    metrics = Metrics()
    for status, n in (("200", 380), ("503", 20)):
        metrics.requests.labels(demo.MODEL, "4", "champion", "predict", status).inc(n)
    metrics.predictions.labels(demo.MODEL, "4", "champion").inc(400)
    metrics.predictions.labels("another-model", "1", "champion").inc(10_000)
    metrics.cache.labels(demo.MODEL, "hit").inc(300)
    metrics.cache.labels(demo.MODEL, "miss").inc(100)
    metrics.workers.labels(demo.MODEL).set(1)
    metrics.info.labels(demo.MODEL, "4", "champion").set(1)
    body, content_type = metrics.exposition()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", body
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_url_fills_cache_infrastructure_and_cost(
        project: Path, tmp_path: Path, metrics_server: tuple[str, bytes]) -> None:
    url, body = metrics_server
    out = tmp_path / "with-metrics.html"
    code, _ = dashboard(project, out, *WINDOW, "--metrics-url", url)
    assert code == 0
    html = out.read_text()
    cpu = float(re.search(rb"^process_cpu_seconds_total (\S+)$", body, re.M).group(1))
    rss = float(re.search(rb"^process_resident_memory_bytes (\S+)$", body, re.M).group(1))
    assert figure(html, "cache_hit_rate") == "75.0%"
    assert figure(html, "cpu_s_per_1000") == f"{1000 * cpu / 400:.3f} s"  # ours, not all
    assert figure(html, "memory") == f"{rss / 2**20:,.0f} MiB"
    assert figure(html, "workers") == "1"
    assert "The server since it started: 400 requests, 5.00% 5xx" in html
    assert f"scraped {url}" in html


def test_an_unreachable_metrics_url_is_a_note(project: Path, tmp_path: Path) -> None:
    from tests.support.services import free_port

    out = tmp_path / "unreachable.html"
    url = f"http://127.0.0.1:{free_port()}/metrics"
    code, _ = dashboard(project, out, *WINDOW, "--metrics-url", url)
    assert code == 0
    html = out.read_text()
    assert f"{url} unreachable" in html
    assert figure(html, "cpu_s_per_1000") == "–"
