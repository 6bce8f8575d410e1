"""The figures behind `loopline dashboard`: traffic, latency and model health from a prediction
log frame, and infrastructure and cost from a server's Prometheus text.

Pure: frames and strings in, frames and dicts out, so every figure the page shows is checked
on constructed data. Column names are the prediction log's (`integrations.prediction_log`),
repeated here because `ml` imports no I/O layer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TIME, MODEL_VERSION, STATUS = "time", "model_version", "status"
LATENCY_MS, PREDICTION, MISSING = "latency_ms", "prediction", "missing_features"
LABEL = "label"  # joined from `loopline feedback`'s labels
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


def bucket_freq(span_s: float) -> str:
    """Per minute up to half a day, so a chart keeps a readable number of points."""
    if span_s <= 12 * 3600:
        return "1min"
    return "5min" if span_s <= 3 * 86400 else "1h"


def requests_only(log: pd.DataFrame) -> pd.DataFrame:
    """One row per HTTP request. A batch request logs one row per prediction, each with an
    id of its own (`<request id>-<i>`) but one time and one latency: those two tell it."""
    if log.empty:
        return log
    return log.drop_duplicates([TIME, LATENCY_MS], keep="first")


def _is_5xx(status: pd.Series) -> pd.Series:
    return pd.to_numeric(status, errors="coerce").fillna(0).between(500, 599)


def _percentile(values: pd.Series, q: float) -> float:
    clean = pd.to_numeric(values, errors="coerce").dropna()
    return float(np.percentile(clean, q * 100)) if len(clean) else math.nan


def traffic(log: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Per bucket: requests, requests/s, 5xx errors, error rate, availability and latency
    percentiles. Buckets without traffic stay in (0 requests, NaN rates) so gaps show."""
    columns = ["requests", "requests_per_s", "errors", "error_rate", "availability",
               *QUANTILES]
    requests = requests_only(log)
    if requests.empty:
        return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], tz="UTC", name=TIME))
    frame = requests.assign(_err=_is_5xx(requests[STATUS]).astype(int))
    grouped = frame.set_index(TIME).sort_index().resample(freq)
    out = pd.DataFrame({"requests": grouped["_err"].count(), "errors": grouped["_err"].sum()})
    seconds = pd.Timedelta(freq).total_seconds()
    out["requests_per_s"] = out["requests"] / seconds
    out["error_rate"] = (out["errors"] / out["requests"]).where(out["requests"] > 0)
    out["availability"] = 1 - out["error_rate"]
    for name, q in QUANTILES.items():
        out[name] = grouped[LATENCY_MS].quantile(q)
    return out[columns]


def requests_by_version(log: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Requests/s per bucket, one column per model version (a swap shows as a hand-over)."""
    requests = requests_only(log)
    if requests.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name=TIME))
    counts = (requests.assign(_n=1, **{MODEL_VERSION: requests[MODEL_VERSION].astype(str)})
              .set_index(TIME).groupby(MODEL_VERSION)["_n"].resample(freq).sum()
              .unstack(MODEL_VERSION, fill_value=0))
    full = pd.date_range(counts.index.min(), counts.index.max(), freq=freq, name=TIME)
    return counts.reindex(full, fill_value=0) / pd.Timedelta(freq).total_seconds()


def totals(log: pd.DataFrame) -> dict[str, Any]:
    """The window's headline figures (what the page's tiles show)."""
    requests = requests_only(log)
    n = len(requests)
    errors = int(_is_5xx(requests[STATUS]).sum()) if n else 0
    status = pd.to_numeric(requests[STATUS], errors="coerce") if n else pd.Series(dtype=float)
    span = (requests[TIME].max() - requests[TIME].min()).total_seconds() if n > 1 else 0.0
    predicted = pd.to_numeric(log[PREDICTION], errors="coerce").notna().sum() if n else 0
    out: dict[str, Any] = {
        "requests": n, "predictions": int(predicted), "errors_5xx": errors,
        "errors_4xx": int(status.between(400, 499).sum()), "span_s": span,
        "requests_per_s": n / max(span, 60.0) if n else math.nan,  # two requests 50 ms
        # apart are not 40 requests/s: the mean is over a minute at least
        "error_rate": errors / n if n else math.nan,
        "availability": 1 - errors / n if n else math.nan,
        "versions": requests[MODEL_VERSION].astype(str).value_counts().sort_index().to_dict()
        if n else {},
    }
    for name, q in QUANTILES.items():
        out[name] = _percentile(requests[LATENCY_MS], q) if n else math.nan
    return out


def missing_shares(log: pd.DataFrame) -> pd.Series:
    """Per feature, the share of logged predictions the online store had no value for."""
    if log.empty or MISSING not in log.columns:
        return pd.Series(dtype=float)
    names = log[MISSING].fillna("").astype(str).str.split(",").explode().str.strip()
    names = names[names != ""]
    return (names.value_counts() / len(log)).sort_values(ascending=False)


def prediction_histogram(predictions: pd.Series,
                         bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of the predicted values; scores in [0, 1] get the same ten buckets
    as the server's `loopline_prediction` histogram, so Grafana and the page agree."""
    values = pd.to_numeric(predictions, errors="coerce").dropna().to_numpy(dtype=float)
    if len(values) and values.min() >= 0 and values.max() <= 1:
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        edges = np.histogram_bin_edges(values, bins=bins if len(values) else 1)
    counts, edges = np.histogram(values, bins=edges)
    return counts, edges


def labelled_metric(log: pd.DataFrame, metric: str = "roc_auc", freq: str | None = None,
                    min_labels: int = 30) -> pd.DataFrame:
    """`metric` on the predictions whose labels arrived (a `label` column), per model version
    and, with `freq`, per bucket; NaN where too few labels or one class only."""
    from loopline.ml.metric_names import REGRESSION
    from loopline.ml.metrics import quality

    if LABEL not in log.columns:
        return pd.DataFrame()
    rows = log[log[LABEL].notna() & pd.to_numeric(log[PREDICTION], errors="coerce").notna()]
    rows = rows[~_is_5xx(rows[STATUS])]
    task = "regression" if metric in REGRESSION else "classification"

    def score(group: pd.DataFrame) -> float:
        y_true = group[LABEL].to_numpy()
        if len(group) < min_labels or (task != "regression" and len(set(y_true)) < 2):
            return math.nan
        scores = group[PREDICTION].to_numpy(dtype="float64")
        return quality(task, y_true, scores, [False, True])[metric]

    keys: list[Any] = [rows[MODEL_VERSION].astype(str).rename(MODEL_VERSION)]
    if freq:
        keys.insert(0, rows[TIME].dt.floor(freq).rename(TIME))
    if rows.empty:
        return pd.DataFrame()
    values = rows.groupby(keys).apply(score, include_groups=False)
    return values.unstack(MODEL_VERSION) if freq else values.to_frame(metric).T


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[Sample]:
    """Samples of the Prometheus text format (comments skipped, label escapes undone)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(match.group(2) or "")}
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        samples.append(Sample(match.group(1), labels, value))
    return samples


@dataclass
class ServerFigures:
    """What one look at a server's /metrics says; None where the server does not export it."""

    cpu_seconds: float | None = None
    memory_bytes: float | None = None
    workers: float | None = None
    predictions: float | None = None
    cache_hits: float | None = None
    cache_misses: float | None = None
    requests: float | None = None
    requests_5xx: float | None = None
    gpu_util: float | None = None
    versions: list[str] = field(default_factory=list)
    live_metric: dict[str, float] = field(default_factory=dict)  # "version metric" -> value
    drift_psi: dict[str, float] = field(default_factory=dict)

    @property
    def cache_hit_rate(self) -> float | None:
        looks = (self.cache_hits or 0) + (self.cache_misses or 0)
        return None if not looks else (self.cache_hits or 0) / looks

    @property
    def cpu_s_per_1000(self) -> float | None:
        """CPU-seconds per 1,000 predictions over the server's life so far."""
        if self.cpu_seconds is None or not self.predictions:
            return None
        return 1000 * self.cpu_seconds / self.predictions


def _sum(samples: list[Sample], name: str, **match: str) -> float | None:
    values = [s.value for s in samples
              if s.name == name and all(s.labels.get(k) == v for k, v in match.items())]
    return float(sum(values)) if values else None


def server_figures(samples: list[Sample], model: str) -> ServerFigures:
    """The dashboard's infrastructure, cache and cost figures for `model` (process metrics
    carry no model label: they are the whole server's)."""
    mine = [s for s in samples if s.labels.get("model", model) == model]
    gpu = [s.value for s in samples if s.name == "DCGM_FI_DEV_GPU_UTIL"]
    return ServerFigures(
        cpu_seconds=_sum(mine, "process_cpu_seconds_total"),
        memory_bytes=_sum(mine, "process_resident_memory_bytes"),
        workers=_sum(mine, "loopline_workers"),
        predictions=_sum(mine, "loopline_predictions_total"),
        requests=_sum(mine, "loopline_requests_total"),
        requests_5xx=sum(s.value for s in mine if s.name == "loopline_requests_total"
                         and s.labels.get("status", "").startswith("5")),
        cache_hits=_sum(mine, "loopline_feature_cache_total", result="hit"),
        cache_misses=_sum(mine, "loopline_feature_cache_total", result="miss"),
        gpu_util=float(np.mean(gpu)) if gpu else None,
        versions=sorted({s.labels.get("version", "") for s in mine
                         if s.name == "loopline_model_info" and s.value > 0} - {""}),
        live_metric={f"v{s.labels.get('version', '?')} {s.labels.get('metric', '?')}": s.value
                     for s in mine if s.name == "loopline_live_metric"},
        drift_psi={s.labels["feature"]: s.value for s in mine
                   if s.name == "loopline_drift_psi" and "feature" in s.labels},
    )
