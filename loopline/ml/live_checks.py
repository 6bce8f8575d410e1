"""Live checks over a window of the prediction log, and the hold rule that keeps them calm.

Pure data in, verdicts out: no files, no registry. `runtime.monitoring` reads the log, joins
labels, finds the served version's evaluation and keeps the state between evaluations.

A check answers `breached` True/False, or None when the window holds too few requests or
labels to say anything ("no verdict"): a quiet night must not look like an outage or a cure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# The prediction log's own columns (integrations.prediction_log.LOG_COLUMNS, repeated here
# because `ml` imports no integration; a unit test keeps the two equal).
REQUEST_ID, TIME, MODEL_VERSION, ROUTE, STATUS = (
    "request_id", "time", "model_version", "route", "status")
LATENCY_MS, PREDICTION, MISSING, ERROR = "latency_ms", "prediction", "missing_features", "error"
LOG_COLUMNS = (REQUEST_ID, TIME, MODEL_VERSION, ROUTE, STATUS, LATENCY_MS, PREDICTION,
               MISSING, ERROR)
LABEL = "label"  # the column prediction_labels.join adds

CHECKS = ("error_rate", "latency", "feature_missing", "metric")
HEALTHY, BREACHED = "healthy", "breached"


@dataclass(frozen=True)
class CheckResult:
    """One check on one window. `breached` None: no verdict (see `detail`)."""

    check: str
    value: float | None
    threshold: float | None
    breached: bool | None
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Figures rounded to 6 decimals: what a person reads in the state and the history."""
        return {"check": self.check, "value": _round(self.value),
                "threshold": _round(self.threshold), "breached": self.breached,
                "detail": self.detail, **{k: _round(v) for k, v in self.figures.items()}}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _no_verdict(check: str, why: str, threshold: float | None = None,
                **figures: Any) -> CheckResult:
    return CheckResult(check, None, threshold, None, f"{why}: no verdict", figures)


def status_codes(frame: pd.DataFrame) -> pd.Series:
    """The HTTP status of each logged request, as numbers (NaN where there is none)."""
    return pd.to_numeric(frame[STATUS], errors="coerce") if STATUS in frame.columns else \
        pd.Series(np.nan, index=frame.index)


def error_rate(frame: pd.DataFrame, limit: float, min_requests: int) -> CheckResult:
    """Share of requests answered with a 5xx (the server failed, not the caller)."""
    requests = len(frame)
    if requests < min_requests:
        return _no_verdict("error_rate", f"{requests} requests (< min_requests {min_requests})",
                           limit, requests=requests)
    errors = int((status_codes(frame) >= 500).sum())
    share = errors / requests
    breached = share > limit
    return CheckResult("error_rate", share, limit, breached,
                       f"{errors} of {requests} requests failed ({share:.2%}, limit {limit:.2%})",
                       {"requests": requests, "errors": errors})


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[status_codes(frame) == 200]


def _of_version(frame: pd.DataFrame, version: str | None) -> pd.DataFrame:
    if version is None or MODEL_VERSION not in frame.columns:
        return frame
    return frame[frame[MODEL_VERSION].astype(str) == str(version)]


def p99(values: Iterable[float]) -> float:
    """The 99th percentile the way Prometheus' histogram_quantile approximates it: linear."""
    return float(np.percentile(np.asarray(list(values), dtype="float64"), 99))


def latency_baseline(frame: pd.DataFrame, version: str, window_s: float, min_requests: int,
                     now: pd.Timestamp) -> dict[str, Any] | None:
    """The p99 of `version`'s successful requests over its first `window_s` of traffic: the
    figure it is held to later. None while that first window is not over (ask again later);
    `p99_ms` None when it held fewer than `min_requests` (a fixed baseline is needed then:
    `p99_baseline_ms`)."""
    rows = _ok(_of_version(frame, version))
    if rows.empty:
        return None
    times = pd.to_datetime(rows[TIME], utc=True)
    first = times.min()
    end = first + pd.Timedelta(seconds=window_s)
    if pd.Timestamp(now) < end:
        return None
    first_window = rows[times < end]
    enough = len(first_window) >= min_requests
    return {"version": str(version),
            "p99_ms": p99(first_window[LATENCY_MS]) if enough else None,
            "requests": len(first_window), "first_seen": first.isoformat(),
            "window_s": window_s}


def latency(frame: pd.DataFrame, version: str | None, ratio: float, baseline_ms: float | None,
            min_requests: int) -> CheckResult:
    """p99 latency of the served version's successful requests vs `ratio` x its baseline."""
    rows = _ok(_of_version(frame, version))
    threshold = None if baseline_ms is None else ratio * baseline_ms
    if len(rows) < min_requests:
        return _no_verdict("latency", f"{len(rows)} successful requests of v{version} "
                           f"(< min_requests {min_requests})", threshold, requests=len(rows),
                           baseline_ms=baseline_ms)
    value = p99(rows[LATENCY_MS])
    if threshold is None:
        return CheckResult("latency", value, None, None,
                           f"p99 {value:.1f} ms; no baseline yet (v{version}'s first window "
                           "is still being measured): no verdict",
                           {"requests": len(rows), "baseline_ms": None})
    return CheckResult("latency", value, threshold, value > threshold,
                       f"p99 {value:.1f} ms vs {ratio:g}x the baseline {baseline_ms:.1f} ms",
                       {"requests": len(rows), "baseline_ms": baseline_ms, "ratio": ratio})


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Everything the log holds beside its own columns: raw inputs and features used."""
    return [c for c in frame.columns if c not in LOG_COLUMNS and c != LABEL]


def missing_shares(frame: pd.DataFrame, features: Sequence[str] | None = None) -> dict[str, float]:
    """Per feature, the share of rows where it was missing: named in `missing_features` (the
    online store had nothing, whatever default filled it) or null in the row itself. Nulls
    count for `features` only (default: every column beside the log's own), since a raw
    field the model never reads may be null without harm."""
    if frame.empty:
        return {}
    named = frame[MISSING].fillna("").astype(str) if MISSING in frame.columns else \
        pd.Series("", index=frame.index)
    listed = named.str.split(",").map(lambda names: {n.strip() for n in names if n.strip()})
    columns = list(features) if features is not None else feature_columns(frame)
    every = dict.fromkeys([*columns, *sorted(set().union(*listed))])
    shares = {}
    for name in every:
        absent = listed.map(lambda names, name=name: name in names).to_numpy(dtype=bool)
        if name in frame.columns:
            absent = absent | frame[name].isna().to_numpy(dtype=bool)
        shares[name] = float(absent.mean())
    return shares


def _answered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that reached the feature lookup: predicted (200), or refused for missing
    features (policy `refuse`); malformed requests and server errors say nothing here."""
    named = frame[MISSING].fillna("").astype(str).str.len() > 0 if MISSING in frame.columns \
        else pd.Series(False, index=frame.index)
    return frame[(status_codes(frame) == 200) | named]


def feature_missing(frame: pd.DataFrame, limit: float, min_requests: int,
                    features: Sequence[str] | None = None) -> CheckResult:
    """The worst feature's missing share; the figures name it and every feature missing."""
    rows = _answered(frame)
    if len(rows) < min_requests:
        return _no_verdict("feature_missing", f"{len(rows)} requests (< min_requests "
                           f"{min_requests})", limit, requests=len(rows))
    shares = missing_shares(rows, features)
    missing = {name: share for name, share in sorted(shares.items(), key=lambda kv: -kv[1])
               if share > 0}
    if not missing:
        return CheckResult("feature_missing", 0.0, limit, False,
                           f"no feature missing in {len(rows)} requests",
                           {"requests": len(rows), "feature": None, "missing": {}})
    worst, share = next(iter(missing.items()))
    return CheckResult("feature_missing", share, limit, share > limit,
                       f"{worst} missing in {share:.1%} of {len(rows)} requests "
                       f"(limit {limit:.1%})",
                       {"requests": len(rows), "feature": worst, "missing": missing})


def metric(frame: pd.DataFrame, version: str | None, task: str, name: str, evaluation: float,
           max_drop: float, min_labels: int, classes: Sequence[Any] | None = None,
           higher_is_better: bool = True) -> CheckResult:
    """The primary metric on the served version's labelled predictions vs its evaluation."""
    from loopline.ml.gate import worsening
    from loopline.ml.metrics import quality

    threshold = evaluation - max_drop if higher_is_better else evaluation + max_drop
    rows = _ok(_of_version(frame, version))
    if LABEL in rows.columns:
        rows = rows[rows[LABEL].notna() & rows[PREDICTION].notna()]
    else:
        rows = rows.iloc[0:0]
    if len(rows) < min_labels:
        return _no_verdict("metric", f"{len(rows)} labelled predictions of v{version} "
                           f"(< min_labels {min_labels})", threshold, metric=name,
                           labelled=len(rows), evaluation=evaluation)
    y_true = rows[LABEL].to_numpy()
    if task != "regression" and pd.Series(y_true).nunique() < 2:
        return _no_verdict("metric", f"the {len(rows)} labels are all {y_true[0]!r}",
                           threshold, metric=name, labelled=len(rows), evaluation=evaluation)
    scores = rows[PREDICTION].to_numpy(dtype="float64")
    value = quality(task, y_true, scores, list(classes or [False, True]))[name]
    drop = worsening(evaluation, value, higher_is_better)
    return CheckResult("metric", value, threshold, drop > max_drop,
                       f"{name} {value:.4f} on {len(rows)} labelled predictions vs "
                       f"{evaluation:.4f} at evaluation (max drop {max_drop:g})",
                       {"metric": name, "labelled": len(rows), "evaluation": evaluation,
                        "drop": drop, "max_drop": max_drop})


# A check flips only after `hold` evaluations in a row disagree with its state.


def apply_hold(previous: Mapping[str, Mapping[str, Any]],
               verdicts: Mapping[str, bool | None], hold: int,
               now: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(state per check, transitions): a healthy check becomes breached after `hold`
    breached evaluations in a row, a breached one healthy after `hold` healthy ones.

    An evaluation without a verdict (None) keeps the state and restarts the count, so a
    quiet spell between two bad minutes never adds up to an alert. Transitions are what
    alerts and history events are written for; `since` is when the state last flipped.
    """
    state: dict[str, dict[str, Any]] = {}
    transitions: list[dict[str, Any]] = []
    for check, breached in verdicts.items():
        before = dict(previous.get(check) or {})
        current = before.get("state", HEALTHY)
        streak = int(before.get("streak", 0))
        since = before.get("since")
        if breached is None or (current == BREACHED) == breached:  # no news, or agrees
            streak = 0
        else:
            streak += 1
            if streak >= hold:
                flipped = BREACHED if breached else HEALTHY
                transitions.append({"check": check, "from": current, "to": flipped,
                                    "after": streak})
                current, streak, since = flipped, 0, now
        state[check] = {"state": current, "streak": streak, "since": since}
    return state, transitions
