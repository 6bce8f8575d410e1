"""Model quality and latency measurements, shared by the gate and by drift's label checks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from loopline.ml.metric_names import HIGHER_IS_BETTER

__all__ = ["HIGHER_IS_BETTER", "latency", "predict_scores", "quality"]


def predict_scores(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability (binary), class probabilities (multi-class) or values."""
    if task == "regression":
        return np.asarray(model.predict(frame), dtype="float64")
    proba = np.asarray(model.predict_proba(frame), dtype="float64")
    return proba[:, 1] if proba.shape[1] == 2 else proba


def quality(task: str, y_true: np.ndarray, scores: np.ndarray, classes: list[Any],
            threshold: float = 0.5) -> dict[str, float]:
    from sklearn import metrics as m

    if task == "regression":
        return {"rmse": float(np.sqrt(m.mean_squared_error(y_true, scores))),
                "mae": float(m.mean_absolute_error(y_true, scores)),
                "r2": float(m.r2_score(y_true, scores))}
    if scores.ndim == 1:  # binary
        positive = classes[1] if len(classes) == 2 else 1
        actual = (np.asarray(y_true) == positive).astype(int)
        predicted = (scores >= threshold).astype(int)
        clipped = np.clip(scores, 1e-15, 1 - 1e-15)
        return {"roc_auc": float(m.roc_auc_score(actual, scores)),
                "pr_auc": float(m.average_precision_score(actual, scores)),
                "accuracy": float(m.accuracy_score(actual, predicted)),
                "f1": float(m.f1_score(actual, predicted)),
                "log_loss": float(m.log_loss(actual, np.column_stack([1 - clipped, clipped]),
                                             labels=[0, 1])),
                "positive_rate": float(actual.mean())}
    predicted = np.asarray(classes)[scores.argmax(axis=1)]
    return {"roc_auc": float(m.roc_auc_score(y_true, scores, multi_class="ovr", labels=classes)),
            "accuracy": float(m.accuracy_score(y_true, predicted)),
            "f1": float(m.f1_score(y_true, predicted, average="macro")),
            "log_loss": float(m.log_loss(y_true, scores, labels=classes))}


def latency(models: dict[str, Any], frame: pd.DataFrame, task: str, single_rows: int = 200,
            batch_rows: int = 1000, batch_repeats: int = 10) -> dict[str, dict[str, float]]:
    """p95 single-row and batch latency (ms), models measured interleaved so noise hits both.

    One thread each, as a serving process would: OpenMP fan-out on a busy machine turns
    microseconds into hundreds of milliseconds and makes the comparison meaningless.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _latency(models, frame, task, single_rows, batch_rows, batch_repeats)


def _latency(models: dict[str, Any], frame: pd.DataFrame, task: str, single_rows: int,
             batch_rows: int, batch_repeats: int) -> dict[str, dict[str, float]]:
    rows = [frame.iloc[[i]] for i in range(min(single_rows, len(frame)))]
    batch = frame.iloc[:batch_rows]
    single: dict[str, list[float]] = {name: [] for name in models}
    batched: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up: first calls pay for lazy initialisation
        predict_scores(model, rows[0], task)
    for row in rows:
        for name, model in models.items():
            started = time.perf_counter()
            predict_scores(model, row, task)
            single[name].append((time.perf_counter() - started) * 1000)
    for _ in range(batch_repeats):
        for name, model in models.items():
            started = time.perf_counter()
            predict_scores(model, batch, task)
            batched[name].append((time.perf_counter() - started) * 1000)
    return {name: {"latency_p95_single_ms": float(np.percentile(single[name], 95)),
                   "latency_p95_batch_ms": float(np.percentile(batched[name], 95))}
            for name in models}
