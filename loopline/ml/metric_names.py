"""The metrics Loopline computes, by task — light, so a spec's gates can be checked against
them before anything runs (a misspelt `roc_aucc` is a spec error, not a failed gate)."""

from __future__ import annotations

CLASSIFICATION = ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "positive_rate")
REGRESSION = ("rmse", "mae", "r2")
LATENCY = ("latency_p95_single_ms", "latency_p95_batch_ms")
BY_TASK: dict[str, tuple[str, ...]] = {"classification": CLASSIFICATION + LATENCY,
                                       "regression": REGRESSION + LATENCY}
ALL = tuple(dict.fromkeys(CLASSIFICATION + REGRESSION + LATENCY))

HIGHER_IS_BETTER = {
    "roc_auc": True, "pr_auc": True, "accuracy": True, "f1": True, "log_loss": False,
    "rmse": False, "mae": False, "r2": True,
    "latency_p95_single_ms": False, "latency_p95_batch_ms": False,
}
