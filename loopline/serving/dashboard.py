"""`loopline dashboard`: the serving dashboard's rows for people without Grafana, from what
the loop already keeps — the prediction log, the drift step's last summary, the live checks'
state — and, when a server is reachable, its /metrics (cache, CPU, memory, workers, cost).

The Grafana dashboard (deploy/grafana/loopline-serving.json) shows the same rows from
Prometheus; this page is the same story from files, so it works after the fact and offline.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.integrations import prediction_log
from loopline.integrations.filesystems import filesystem
from loopline.ml import dashboard_rows as rows
from loopline.serving.dashboard_page import NO_METRICS, DashboardData, render_html
from loopline.spec.durations import duration_seconds
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SINCE = "24h"
# The log's own columns: the page needs no input or feature column, and a day of traffic
# with a hundred features would otherwise be read whole.
COLUMNS = [prediction_log.REQUEST_ID, prediction_log.TIME, prediction_log.MODEL_VERSION,
           prediction_log.STATUS, prediction_log.LATENCY_MS, prediction_log.PREDICTION,
           prediction_log.MISSING]


def moment(value: str | None, now: datetime, default: str | None = None) -> datetime:
    """A window end: a duration back from now (`24h`, `30m`, `90`) or a UTC time
    (`2026-11-26`, `2026-11-26T07:00`; a zone offset is honoured)."""
    value = value if value is not None else default
    if value is None:
        return now
    try:
        return now - timedelta(seconds=duration_seconds(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a duration (24h, 30m) nor a time "
                         "(2026-11-26T07:00)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class Sources:
    """Where the page reads from, besides the spec's own log."""

    since: datetime
    until: datetime
    drift_spec: Path | None = None
    metrics_url: str | None = None


def collect(loaded: LoadedSpec, sources: Sources) -> DashboardData:
    """Read every source once; a missing one becomes a note on the page, never an error."""
    if loaded.spec.registry is None:
        raise ValueError(f"{loaded.display} has no registry.model_name: no model to show")
    model = loaded.spec.registry.model_name
    root = location(loaded.spec.artifacts.root, loaded.project_root)
    folder = prediction_log.log_folder(root, model)
    log = read_log(folder, root, model, sources)
    serve = loaded.spec.serve
    data = DashboardData(model=model, since=sources.since, until=sources.until, log=log,
                         log_folder=folder,
                         declared_workers=serve.workers if serve else None)
    if serve is not None:
        checks = serve.monitoring
        data.limits = {"error_rate": checks.error_rate, "feature_missing": checks.feature_missing,
                       "p99_baseline_ms": checks.p99_baseline_ms}
    data.drift, data.drift_note = latest_drift(loaded, sources.drift_spec)
    data.live_state, data.live_note = live_state(root, model)
    if sources.metrics_url:
        data.server, data.server_note = server_metrics(sources.metrics_url, model)
    return data


def read_log(folder: str, root: str, model: str, sources: Sources) -> pd.DataFrame:
    """The window's log, with a `label` column where `loopline feedback` kept labels: they
    are matched by their own keys (request id or entity keys), so those columns are read too."""
    from loopline.integrations import prediction_labels

    labels = prediction_labels.read(prediction_labels.labels_folder(root, model))
    keys = sorted({c for frame in labels for c in frame.columns} - {prediction_labels.LABEL}
                  - set(COLUMNS))
    try:
        log = prediction_log.read(folder, sources.since, sources.until, COLUMNS + keys)
    except (ValueError, KeyError):  # a key column some files lack: match by request id only
        log = prediction_log.read(folder, sources.since, sources.until, COLUMNS)
    return prediction_labels.join(log, labels) if labels else log


def drift_specs(loaded: LoadedSpec) -> list[Path]:
    """The drift specs beside `loaded` that retrain it (the specs in its folder whose
    `retrain.pipeline` names it): where its drift summaries come from."""
    from loopline.runtime.retrain import drift_specs_retraining

    return [other.path for other in drift_specs_retraining(loaded)]


def latest_drift(loaded: LoadedSpec, drift_spec: Path | None) -> tuple[dict[str, Any] | None,
                                                                        str]:
    """The drift step's last committed summary and a line saying whence (or why none)."""
    from loopline.runtime.retrain import drift_summary
    from loopline.runtime.store import open_store
    from loopline.spec.load import load_spec

    candidates = [drift_spec] if drift_spec else drift_specs(loaded)
    if not candidates:
        return None, ("no drift spec retrains this spec; pass --drift-spec "
                      "pipelines/<name>_drift.yaml")
    path = candidates[0]
    drift = load_spec(path)
    if drift.spec.retrain is None:
        return None, f"{path} has no retrain: block naming its drift step"
    try:
        summary = drift_summary(drift)
    except FileNotFoundError as exc:
        return None, f"{path}: {exc}"
    store = open_store(drift.spec.artifacts.root, drift.project_root)
    manifest = store.read_manifest(drift.spec.name, drift.spec.retrain.step) or {}
    window = summary.get("window") or []
    shown = ", ".join(Path(str(w)).name for w in window[:3]) + (" …" if len(window) > 3 else "")
    return summary, (f"drift: {path.name} step {drift.spec.retrain.step}, finished "
                     f"{manifest.get('finished', '?')}; current window: {shown or '?'}; "
                     f"report: {summary.get('report', '-')}")


def live_state(artifacts_root: str, model: str) -> tuple[dict[str, Any] | None, str]:
    """`<artifacts root>/monitoring/<model>/live_state.json`, written by `loopline serve`'s
    live checks; absent until they ran."""
    uri = f"{artifacts_root.rstrip('/')}/monitoring/{model}/live_state.json"
    fs, path = filesystem(uri)
    try:
        if not fs.exists(path):
            return None, "live checks: no state yet (written by `loopline serve` as it checks)"
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read()), f"live checks: {uri}"
    except (OSError, ValueError) as exc:
        return None, f"live checks: {uri} unreadable ({type(exc).__name__}: {exc})"


def server_metrics(url: str, model: str,
                   timeout_s: float = 5.0) -> tuple[rows.ServerFigures | None, str]:
    """One scrape of a server's /metrics; unreachable: None and why (the URL is the user's
    own, never a secret, so it is shown)."""
    import urllib.error
    import urllib.request

    if not re.match(r"^https?://", url):
        return None, f"{url} is not an http(s) URL; {NO_METRICS}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            text = answer.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return None, f"{url} unreachable ({exc}); CPU, memory, cache and cost not shown"
    figures = rows.server_figures(rows.parse_prometheus(text), model)
    when = datetime.now(UTC)
    return figures, f"scraped {url} at {when:%H:%M:%S} UTC"


def write_page(path: Path, text: str) -> Path:
    """Atomically: a reader (a browser reloading, a web server) never sees half a page."""
    staging = path.with_name(f".{path.name}.tmp{os.getpid()}")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
    return path


def build(loaded: LoadedSpec, output: Path, sources: Sources,
          now: datetime | None = None) -> DashboardData:
    """Collect, render and write the page; returns what it showed."""
    data = collect(loaded, sources)
    write_page(output, render_html(data, now or datetime.now(UTC)))
    return data
