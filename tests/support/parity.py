"""The all-local run every backend is compared with, run once per test session.

The parity tests (DVC, kfp-local, Airflow's dag.test, the production profile, pods) each ran
the example locally on the same small slice to get the metrics their backend must reproduce:
five identical trainings. The first test to ask runs it under a lock; the others, in either
xdist worker, read its summary.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import copy_example, run_json

# January trains, February judges; no latency gate worth the name (runs that follow on a loaded
# machine must not fail on a 2x slower p95 against the champion this one registered).
SLICE = {"data__last_month": 2, "data__eval_from": "2013-02-01", "train__max_iter": 40,
         "gate__min_roc_auc": 0.55, "gate__max_latency_ratio": 100.0}
METRICS = ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss")


def parity_project(target: Path) -> Path:
    """A fresh copy of the example on the shared slice, for the backend under test."""
    return copy_example(target, **SLICE)


def local_summary(factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`loopline run --json` of the example on SLICE, in a project of its own."""
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    done = shared / "parity-local" / "summary.json"
    with _locked(shared / "parity-local.lock"):
        if not done.exists():
            summary = run_json(parity_project(shared / "parity-local" / "project")
                               / "pipelines" / "flights.yaml")
            assert summary["status"] == "succeeded", summary
            done.write_text(json.dumps(summary))
    return dict(json.loads(done.read_text()))


def assert_same_metrics(theirs: dict[str, float], ours: dict[str, float]) -> None:
    for metric in METRICS:
        assert theirs[metric] == pytest.approx(ours[metric], rel=0, abs=1e-12), metric


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
