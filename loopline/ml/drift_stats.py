"""Per-column drift statistics with Evidently's exact numbers, computed once per column.

Evidently 0.7's DataDriftPreset computes each column several times and renders as it goes
(57-140 s for 1M rows x 20 columns here). These are the same formulas — PSI and Jensen-Shannon
over Sturges equal-width bins of reference+current (PSI with Evidently's zero fill), the
two-sample KS p-value, and the Wasserstein distance normed by the reference's std — applied
once per column on NumPy arrays. Tests hold them to Evidently's own functions within 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopline.ml.drift_methods import METHODS, NUMERIC_ONLY, is_drift


@dataclass(frozen=True)
class ColumnDrift:
    """`drifted`: past `threshold` (an alert). `severity` adds the retrain level."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    retrain_threshold: float | None = None

    @property
    def severity(self) -> str:
        if self.retrain_threshold is not None and \
                is_drift(self.method, self.score, self.retrain_threshold):
            return "retrain"
        return "warn" if self.drifted else "none"

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "method": self.method, "score": self.score,
                "threshold": self.threshold, "retrain_threshold": self.retrain_threshold,
                "drifted": self.drifted, "severity": self.severity}


def _clean(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "fc":
        array = array[np.isfinite(array)]
    elif array.dtype.kind == "O":
        array = np.asarray([v for v in array if v is not None and v == v], dtype=object)
    return array


def _zero_fill(percents: np.ndarray) -> np.ndarray:
    """Evidently's: empty buckets get min(non-zero)/1e6 if that min <= 1e-4, else 1e-4."""
    nonzero = percents[percents != 0]
    if len(nonzero) == 0:
        return percents
    smallest = nonzero.min()
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(percents == 0, fill, percents)


def _more_than_20_values(values: np.ndarray) -> bool:
    """Exactly `nunique > 20`, usually decided on a prefix: distinct values in a part are a
    lower bound for the whole (sorting a million floats to count them costs more than PSI)."""
    if len(np.unique(values[:10_000])) > 20:
        return True
    return len(np.unique(values)) > 20


def binned(reference: np.ndarray, current: np.ndarray, numeric: bool,
           fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bucket shares as Evidently computes them (numeric with >20 distinct values: Sturges
    equal-width bins of both samples; otherwise one bucket per value seen in either)."""
    if numeric and _more_than_20_values(reference):
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        ref = np.histogram(reference, edges)[0] / len(reference)
        cur = np.histogram(current, edges)[0] / len(current)
    else:
        keys, inverse = np.unique(np.concatenate([reference, current]).astype(str),
                                  return_inverse=True)
        ref = np.bincount(inverse[:len(reference)], minlength=len(keys)) / len(reference)
        cur = np.bincount(inverse[len(reference):], minlength=len(keys)) / len(current)
    if fill_zeros:
        ref, cur = _zero_fill(ref.astype(float)), _zero_fill(cur.astype(float))
    return ref.astype(float), cur.astype(float)


def score(method: str, reference: Any, current: Any, numeric: bool) -> float:
    from scipy import stats
    from scipy.spatial import distance

    ref, cur = _clean(reference), _clean(current)
    if method == "psi":
        p, q = binned(ref, cur, numeric, fill_zeros=True)
        return float(np.sum((p - q) * np.log(p / q)))
    if method == "jensenshannon":
        p, q = binned(ref, cur, numeric, fill_zeros=False)
        return float(distance.jensenshannon(p, q))
    if method == "ks":
        return float(stats.ks_2samp(ref.astype(float), cur.astype(float))[1])
    if method == "wasserstein":
        norm = max(float(np.std(ref.astype(float))), 0.001)
        return float(stats.wasserstein_distance(ref.astype(float), cur.astype(float)) / norm)
    raise ValueError(f"unknown drift method {method!r}; use one of {', '.join(METHODS)}")


def column_drift(column: str, method: str, reference: Any, current: Any, numeric: bool,
                 threshold: float, retrain_threshold: float | None = None) -> ColumnDrift:
    if method in NUMERIC_ONLY and not numeric:
        raise ValueError(f"{column}: {method} needs a numeric column")
    value = score(method, reference, current, numeric)
    return ColumnDrift(column, method, value, threshold, is_drift(method, value, threshold),
                       retrain_threshold)
