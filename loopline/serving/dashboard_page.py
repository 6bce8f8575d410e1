"""The HTML of `loopline dashboard`: the four rows of the serving dashboard (traffic and
health, model health, infrastructure, cost) as one self-contained page.

Inline CSS, charts as `data:` PNGs, no script: it opens from a file, a mail attachment or an
artifact store and never reaches the network. Every headline figure is text (not only pixels),
so it can be searched, copied and tested. Where a figure is not in the sources given, the page
says where it would come from instead of leaving a blank.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.ml import dashboard_rows as rows
from loopline.serving import dashboard_charts as charts

if TYPE_CHECKING:
    import pandas as pd

NO_METRICS = "not in the log: pass --metrics-url with the server's /metrics address to read it"


@dataclass
class DashboardData:
    """Everything one page shows; `*_note` says where a part came from, or why it is absent."""

    model: str
    since: datetime
    until: datetime
    log: pd.DataFrame
    log_folder: str
    drift: dict[str, Any] | None = None
    drift_note: str = ""
    live_state: dict[str, Any] | None = None
    live_note: str = ""
    server: rows.ServerFigures | None = None
    server_note: str = NO_METRICS
    declared_workers: int | None = None
    limits: dict[str, float | None] = field(default_factory=dict)  # serve.monitoring


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if _missing(value) else f"{value * 100:.{digits}f}%"


def ms(value: float | None) -> str:
    return "–" if _missing(value) else f"{value:.1f} ms"


def num(value: float | None, digits: int = 2) -> str:
    if _missing(value):
        return "–"
    assert value is not None
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else \
        f"{value:,.{digits}f}"


def _bytes(value: float | None) -> str:
    return "–" if _missing(value) else f"{(value or 0) / 2**20:,.0f} MiB"


def tile(key: str, label: str, value: str, note: str = "", state: str = "") -> str:
    return (f'<div class="tile {state}" data-figure="{_e(key)}"><div class="label">{_e(label)}'
            f'</div><div class="value">{_e(value)}</div><div class="note">{_e(note)}</div></div>')


def chart(src: str, caption: str) -> str:
    # decoding="sync": painted with the page, so a screenshot or print never catches a blank
    return (f'<figure><img alt="{_e(caption)}" decoding="sync" src="{src}"><figcaption>'
            f"{_e(caption)}</figcaption></figure>")


def note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{_e(text)}</p>'


def table(header: list[str], body: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in line) + "</tr>"
                    for line in body)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>'


def block(title: str, inner: str) -> str:
    return f'<div class="block"><h3>{_e(title)}</h3>{inner}</div>'


def section(key: str, title: str, tiles: list[str], parts: list[str]) -> str:
    """A row: tiles, then charts, then tables, then the notes saying where things came from."""
    order = ("<figure", '<div class="block"')
    parts = sorted((p for p in parts if p), key=lambda p: next(
        (i for i, start in enumerate(order) if p.startswith(start)), len(order)))
    return (f'<section id="{key}"><h2>{_e(title)}</h2><div class="tiles">{"".join(tiles)}'
            f'</div><div class="parts">{"".join(parts)}</div></section>')


def _state(value: float | None, limit: float | None, higher_is_bad: bool = True) -> str:
    if _missing(value) or limit is None:
        return ""
    assert value is not None
    return "bad" if (value > limit if higher_is_bad else value < limit) else "ok"


def traffic_row(data: DashboardData) -> str:
    log = data.log
    totals = rows.totals(log)
    if not totals["requests"]:
        return section("traffic", "Traffic & health", [], [note(
            f"No predictions logged between {data.since:%Y-%m-%d %H:%M} and "
            f"{data.until:%Y-%m-%d %H:%M} UTC in {data.log_folder}.", "empty")])
    freq = rows.bucket_freq(totals["span_s"])
    per = rows.traffic(log, freq)
    by_version = rows.requests_by_version(log, freq)
    error_limit = data.limits.get("error_rate")
    versions = ", ".join(f"v{v}: {n:,}" for v, n in totals["versions"].items())
    tiles = [
        tile("requests", "Requests", num(totals["requests"]), versions),
        tile("requests_per_s", "Requests/s", num(totals["requests_per_s"]),
             f"mean; peak {num(per['requests_per_s'].max())}/s per {freq}"),
        tile("error_rate", "Error rate (5xx)", pct(totals["error_rate"]),
             f"{totals['errors_5xx']:,} errors; {totals['errors_4xx']:,} refused (4xx)",
             _state(totals["error_rate"], error_limit)),
        tile("p95_ms", "Latency p95", ms(totals["p95_ms"]),
             f"p50 {ms(totals['p50_ms'])} · p99 {ms(totals['p99_ms'])}"),
        tile("availability", "Availability", pct(totals["availability"], 3),
             "answers that were not 5xx"),
    ]
    parts = [
        chart(charts.lines(by_version.rename(columns=lambda v: f"v{v}"), "requests/s"),
              f"Requests/s per model version (per {freq})"),
        chart(charts.lines(per[["error_rate"]].rename(columns={"error_rate": "5xx share"}),
                           "error rate", percent=True, limit=error_limit,
                           limit_label="alert limit"),
              f"Error rate: 5xx share per {freq}"),
        chart(charts.lines(per[list(rows.QUANTILES)].rename(columns=lambda c: c[:3]), "ms",
                           limit=data.limits.get("p99_baseline_ms"),
                           limit_label="p99 baseline"),
              f"Latency p50 / p95 / p99 per {freq}"),
        chart(charts.lines(per[["availability"]], "availability", percent=True),
              f"Availability per {freq}"),
    ]
    server = data.server
    if server is not None and server.requests:
        parts.append(note(f"The server since it started: {num(server.requests)} requests, "
                          f"{pct((server.requests_5xx or 0) / server.requests)} 5xx (/metrics "
                          "also counts answers that never reached the model: malformed "
                          "requests, not ready; the log holds those that did)."))
    return section("traffic", "Traffic & health", tiles, parts)


def _drift_parts(data: DashboardData) -> tuple[list[str], list[str]]:
    summary = data.drift
    if summary is None:
        psi = data.server.drift_psi if data.server else {}
        if psi:
            columns = {k: {"score": v, "method": "psi"} for k, v in psi.items()}
            return [], [chart(charts.drift_bars(columns), "Drift PSI per feature (/metrics)"),
                         note(data.drift_note)]
        return [tile("drift", "Drift", "–", "no drift summary")], [note(data.drift_note)]
    columns = dict(summary.get("columns") or {})
    listed = [[c, v.get("method"), f"{float(v.get('score', 0)):.4f}", v.get("threshold"),
               v.get("retrain_threshold"), v.get("severity")] for c, v in columns.items()]
    if prediction := summary.get("prediction"):
        listed.append(["(prediction)", prediction.get("method"),
                       f"{float(prediction.get('score', 0)):.4f}", prediction.get("threshold"),
                       prediction.get("retrain_threshold"), prediction.get("severity")])
    action = str(summary.get("action", "none"))
    tiles = [tile("drift_action", "Drift action", action, "; ".join(summary.get("reasons") or [])
                  or "; ".join(summary.get("warnings") or []) or "no drift",
                  {"none": "ok", "alert": "warn", "retrain": "bad"}.get(action, "")),
             tile("share_drifted", "Features drifted", pct(summary.get("share_drifted"), 0),
                  f"{sum(1 for v in columns.values() if v.get('drifted'))} of {len(columns)}")]
    parts = []
    if columns:
        parts.append(chart(charts.drift_bars(columns), "Drift score per feature "
                           "(the drift step's methods and limits)"))
    if listed:
        parts.append(block("Drift per feature", table(
            ["feature", "method", "score", "warn", "retrain", "severity"], listed, "drift")))
    parts.append(note(data.drift_note))
    return tiles, parts


def _live_parts(data: DashboardData) -> tuple[list[str], list[str]]:
    tiles: list[str] = []
    parts: list[str] = []
    performance = (data.drift or {}).get("performance")
    if data.server and data.server.live_metric:
        for name, value in sorted(data.server.live_metric.items()):
            tiles.append(tile("live_metric", f"Live {name}", num(value, 4), "from /metrics"))
    if performance:
        tiles.append(tile("labelled_metric", f"{performance.get('metric')} at the last drift run",
                          num(performance.get("current"), 4),
                          f"{performance.get('labelled_rows', 0):,} labelled rows; evaluation "
                          f"{num(performance.get('evaluation'), 4)}",
                          "bad" if performance.get("degraded") else "ok"))
    name = live_metric_name(data)
    if rows.LABEL in data.log.columns and data.log[rows.LABEL].notna().any():
        labelled = int(data.log[rows.LABEL].notna().sum())
        whole = rows.labelled_metric(data.log, name)
        for version, value in (whole.iloc[0].items() if not whole.empty else []):
            tiles.append(tile("live_metric", f"Live {name} v{version}", num(value, 4),
                              f"{labelled:,} labelled predictions in the window"
                              if not _missing(value) else "too few labels or one class"))
        per = rows.labelled_metric(data.log, name, freq=_label_freq(data))
        if per.notna().sum().max() >= 3:  # a line, not a dot or two
            parts.append(chart(charts.lines(per.rename(columns=lambda v: f"v{v}"), name),
                               f"Live {name} on labelled predictions, per {_label_freq(data)}"))
    if data.live_state is not None:
        parts.append(live_state_table(data.live_state))
    if data.live_note:
        parts.append(note(data.live_note))
    if not tiles and data.live_state is None:
        tiles.append(tile("live_metric", "Live metric", "–", "no labels joined yet"))
    return tiles, parts


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    try:  # an ISO time: short and in UTC
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{when.astimezone(UTC):%m-%d %H:%M}" if when.tzinfo else str(value)


def live_metric_name(data: DashboardData) -> str:
    """The metric the live check watches, else the drift step's, else ROC AUC."""
    check = ((data.live_state or {}).get("checks") or {}).get("metric") or {}
    performance = (data.drift or {}).get("performance") or {}
    return str(check.get("metric") or performance.get("metric") or "roc_auc")


def _label_freq(data: DashboardData) -> str:
    return "15min" if (data.until - data.since).total_seconds() <= 12 * 3600 else "1h"


def live_state_table(state: dict[str, Any]) -> str:
    """The live checks' state as written by the monitoring loop: one line per check when it
    is a mapping of checks, else the document itself."""
    checks = state.get("checks", state)
    if isinstance(checks, dict) and checks and all(isinstance(v, dict) for v in checks.values()):
        keys = ["state", "value", "threshold", "streak", "since", "detail"]
        body = [[name, *(_cell(check.get(k)) for k in keys)] for name, check in checks.items()]
        when = state.get("evaluated_at")
        title = f"Live checks (evaluated {_cell(when)} UTC)" if when else "Live checks"
        return block(title, table(["check", *keys], body, "live"))
    return block("Live checks", f"<pre>{_e(json.dumps(state, indent=2, default=str))}</pre>")


def model_row(data: DashboardData) -> str:
    drift_tiles, drift_parts = _drift_parts(data)
    live_tiles, live_parts = _live_parts(data)
    tiles = [*drift_tiles, *live_tiles]
    server = data.server
    rate = server.cache_hit_rate if server else None
    tiles.append(tile("cache_hit_rate", "Feature-cache hit rate", pct(rate, 1),
                      f"{num(server.cache_hits)} hits, {num(server.cache_misses)} misses"
                      if rate is not None and server else
                      "not in the log" + ("" if server else ": pass --metrics-url")))
    parts = [*drift_parts, *live_parts]
    log = data.log
    if not log.empty:
        counts, edges = rows.prediction_histogram(log[rows.PREDICTION])
        values = log[rows.PREDICTION].dropna()
        tiles.append(tile("mean_prediction", "Mean prediction", num(values.mean(), 4),
                          f"{len(values):,} predictions"))
        parts.insert(0, chart(charts.histogram(counts, edges, "predicted value"),
                              "Prediction distribution (the window's log)"))
        missing = rows.missing_shares(log)
        limit = data.limits.get("feature_missing")
        requests = log[rows.MISSING].fillna("").astype(str).str.len().gt(0).mean()
        tiles.append(tile("missing_share", "Predictions missing a feature", pct(requests, 1),
                          ", ".join(f"{k} {pct(v, 1)}" for k, v in missing.head(3).items())
                          or "none", _state(float(missing.max()) if len(missing) else 0.0,
                                            limit)))
        if len(missing):
            parts.append(chart(charts.shares(missing.head(15).to_dict(), "share of predictions",
                                             limit), "Missing features (online store had no "
                                                     "value) per feature"))
    return section("model", "Model health", tiles, parts)


def infrastructure_row(data: DashboardData) -> str:
    server = data.server
    declared = f"declared in serve.workers: {data.declared_workers}" \
        if data.declared_workers else ""
    if server is None:
        tiles = [tile("cpu_seconds", "CPU", "–", "not in the log"),
                 tile("memory", "Memory (RSS)", "–", "not in the log"),
                 tile("workers", "Workers", num(data.declared_workers), declared),
                 tile("gpu", "GPU", "–", "not in the log")]
        return section("infrastructure", "Infrastructure", tiles, [note(data.server_note)])
    unexported = "not exported (several workers: prometheus_client's multiprocess mode has " \
        "no process metrics)"
    tiles = [tile("cpu_seconds", "CPU", "–" if server.cpu_seconds is None
                  else f"{num(server.cpu_seconds)} s", "CPU-seconds since the server started"
                  if server.cpu_seconds is not None else unexported),
             tile("memory", "Memory (RSS)", _bytes(server.memory_bytes), "resident set"
                  if server.memory_bytes is not None else unexported),
             tile("workers", "Workers", num(server.workers if server.workers is not None
                                            else data.declared_workers), declared),
             tile("gpu", "GPU utilisation", "–" if server.gpu_util is None
                  else f"{server.gpu_util:.0f}%", "DCGM exporter" if server.gpu_util
                  is not None else "no GPU metrics (a CPU model, or no DCGM exporter)")]
    versions = ", ".join(f"v{v}" for v in server.versions) or "–"
    return section("infrastructure", "Infrastructure", tiles,
                   [note(f"{data.server_note} · serving {versions}")])


def cost_row(data: DashboardData) -> str:
    server = data.server
    value = server.cpu_s_per_1000 if server else None
    figure = tile("cpu_s_per_1000", "CPU-seconds per 1,000 predictions",
                  "–" if value is None else f"{value:.3f} s",
                  "1000 × CPU-seconds ÷ predictions, over the server's life"
                  if value is not None else "CPU is not in the log: pass --metrics-url"
                  if server is None else "the server exports no CPU figure")
    parts = [] if server is None else [note(
        f"{num(server.cpu_seconds)} CPU-seconds for {num(server.predictions)} predictions")]
    return section("cost", "Cost", [figure], parts)


def render_html(data: DashboardData, generated: datetime) -> str:
    """The whole page."""
    body = "".join(f(data) for f in (traffic_row, model_row, infrastructure_row, cost_row))
    meta = (f"{data.since:%Y-%m-%d %H:%M} – {data.until:%Y-%m-%d %H:%M} UTC · "
            f"{len(data.log):,} logged predictions from {data.log_folder} · generated "
            f"{generated:%Y-%m-%d %H:%M:%S} UTC")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(data.model)} · Loopline serving</title><style>{CSS}</style></head>"
            f'<body><header><h1>{_e(data.model)}</h1><p class="meta">{_e(meta)}</p></header>'
            f"<main>{body}</main></body></html>\n")


CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d2330; background: #f4f5f7; }
header { padding: 16px 28px 8px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header .meta { margin: 4px 0 8px; color: #c3c8d2; font-size: 12px; }
main { padding: 8px 28px 28px; }
section { background: #fff; border: 1px solid #dfe2e7; border-radius: 6px; margin: 16px 0;
          padding: 12px 16px 16px; }
h2 { margin: 0 0 10px; font-size: 16px; }
h3 { margin: 10px 0 4px; font-size: 13px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 10px; }
.tile { flex: 1 1 170px; max-width: 260px; border: 1px solid #e3e6eb; border-left: 4px solid
        #aab2bf; border-radius: 4px; padding: 8px 10px; background: #fafbfc; }
.tile.ok { border-left-color: #2e9e5b; } .tile.warn { border-left-color: #e0a800; }
.tile.bad { border-left-color: #c0392b; background: #fdf2f1; }
.tile .label { font-size: 12px; color: #5b6474; }
.tile .value { font-size: 22px; font-weight: 600; margin: 2px 0; }
.tile .note { font-size: 11px; color: #6b7483; }
.parts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
         gap: 12px 16px; align-items: start; }
figure { margin: 0; }
figure img { width: 100%; max-width: 640px; height: auto; display: block; }
figcaption { font-size: 12px; color: #5b6474; margin-top: 2px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border-bottom: 1px solid #e3e6eb; padding: 3px 8px; text-align: left; }
th { color: #5b6474; font-weight: 600; }
p.note { grid-column: 1 / -1; margin: 4px 0 0; font-size: 12px; color: #6b7483; }
p.empty { font-size: 14px; color: #8a5a00; }
pre { font-size: 11px; background: #fafbfc; padding: 8px; border: 1px solid #e3e6eb; }
"""
