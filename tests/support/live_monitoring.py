"""A served project for the live-monitoring tests: `loopline init`'s project trained once
(a real registered version in a real SQLite registry), a `serve:` block, a drift spec that
retrains it, and real prediction-log files written the way the server writes them."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.integrations import prediction_log

MODEL = "my-model"
SERVE = """
serve:
  monitoring:
    window: 1m
    hold: 3
    min_requests: 20
    min_labels: 50
    metric_window: 1m
    error_rate: 0.05
    feature_missing: 0.2
"""
DRIFT = """\
name: drift
registry: {model_name: my-model}
steps:
  drift:
    component: drift.evidently
retrain:
  pipeline: pipelines/train.yaml
  step: drift
  cooldown: 1h
"""


def trained_project(target: Path) -> Path:
    """`loopline init` + serve: + a drift spec beside it, trained and promoted (v1)."""
    from loopline.cli.init import create_project
    from tests.support import run_json

    project = create_project(target)
    spec = project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text() + SERVE)
    (project / "pipelines" / "drift.yaml").write_text(DRIFT)
    trained = run_json(spec)
    assert trained["model"]["aliases"] and "champion" in trained["model"]["aliases"], trained
    return project


def copy_project(source: Path, target: Path) -> Path:
    """A private copy (its own registry file and artifact root) of a trained project."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("artifacts"))
    return target


def with_rollout(source: Path, target: Path, block: str) -> Path:
    """A private copy whose training spec ends with `block` (a `rollout:` and what goes with
    it), and v2 registered as a copy of v1 (verified: its card comes along)."""
    from tests.support import registry_client

    project = copy_project(source, target)
    spec = project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text() + block)
    registry_client(project).copy_model_version(f"models:/{MODEL}/1", MODEL)
    return project


def sample(project: Path) -> pd.DataFrame:
    """The project's real flights, with the scheduled departure hour as a UTC time (what a
    labels feed keys flights by, beside carrier and origin)."""
    flights = pd.read_csv(project / "data" / "flights_sample.csv")
    flights["time_hour"] = pd.to_datetime(dict(
        year=2013, month=flights["month"], day=flights["day"],
        hour=flights["sched_dep_time"] // 100), utc=True)
    return flights


def log_minute(project: Path, start: datetime, rows: int = 60, *, errors: int = 0,
               latency_ms: float | list[float] = 5.0, version: str = "1",
               missing: Iterable[str] = (), predictions: np.ndarray | None = None,
               offset: int = 0) -> list[str]:
    """One minute of traffic from `start` as one log file: real flights from the sample as
    inputs, request ids `<minute>-<i>`, `errors` of them answered 500; `latency_ms` one
    figure for all or one per request."""
    flights = sample(project).iloc[offset:offset + rows].reset_index(drop=True)
    ids = []
    out = []
    for i, flight in flights.iterrows():
        failed = i < errors
        request_id = f"{start:%H%M}-{offset + i}"
        ids.append(request_id)
        values: dict[str, Any] = {c: flight[c] for c in flights.columns if c != "arr_delay"}
        score = None if failed else float(predictions[i] if predictions is not None else 0.3)
        took = latency_ms[i] if isinstance(latency_ms, list) else latency_ms
        out.append(prediction_log.row(
            request_id, start + timedelta(seconds=i * 60 / rows), version, "champion",
            500 if failed else 200, took, score, missing=list(missing),
            error="boom" if failed else None, values=values))
    prediction_log.write_file(log_folder(project), out)
    return ids


def log_folder(project: Path) -> str:
    return prediction_log.log_folder(str(project / "artifacts"), MODEL)
