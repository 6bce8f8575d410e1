"""Rows in, scores out: the online feature join and one model call for a batch of requests.

Runs on the server's model thread (never on the event loop). Rows that reach one version in
the same batch share one feature lookup and one model call: for tree models 32 rows cost
little more than one (stack-facts: 4.7 ms vs 5.9 ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loopline.serving.served_model import ServedModel
from loopline.spec.serving import MissingFeatures


@dataclass
class Job:
    """One request's rows, routed to one version."""

    rows: list[dict[str, Any]]
    model: ServedModel
    route: str
    ids: list[str] = field(default_factory=list)  # one request id per row, as logged
    scores: list[float | None] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    missing: list[list[str]] = field(default_factory=list)
    refused: bool = False
    error: str | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    work_s: float = 0.0  # the lookup and model call of its batch (not the wait for one)


def run_jobs(jobs: list[Job], policy: MissingFeatures) -> None:
    """Fill each job's scores (or its refusal or error). Jobs whose versions read the same
    online features share one lookup (a rollout's two versions of one feature service);
    jobs of one version share one model call."""
    started = time.perf_counter()
    for group in _grouped(jobs, lambda job: id(job.model.features)):
        try:
            _look_up(group, policy)
        except Exception as exc:  # noqa: BLE001 - a broken store answers 500, serving goes on
            _fail(group, exc)
    for group in _grouped([j for j in jobs if not j.error], lambda job: id(job.model)):
        try:
            _predict(group)
        except Exception as exc:  # noqa: BLE001 - a broken model answers 500, serving goes on
            _fail(group, exc)
    for job in jobs:
        job.work_s = time.perf_counter() - started


def _grouped(jobs: list[Job], key: Any) -> list[list[Job]]:
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(key(job), []).append(job)
    return list(groups.values())


def _fail(jobs: list[Job], exc: Exception) -> None:
    for job in jobs:
        job.error = f"{type(exc).__name__}: {str(exc)[:300]}"


def _look_up(jobs: list[Job], policy: MissingFeatures) -> None:
    features = jobs[0].model.features
    if features is None:
        for job in jobs:
            job.features = [{} for _ in job.rows]
            job.missing = [[] for _ in job.rows]
        return
    looked = features.lookup([row for job in jobs for row in job.rows])
    jobs[0].cache_hits, jobs[0].cache_misses = looked.hits, looked.misses
    at = 0
    for job in jobs:
        count = len(job.rows)
        job.features = [_filled(v, policy) for v in looked.values[at:at + count]]
        job.missing = looked.missing[at:at + count]
        job.refused = policy.policy == "refuse" and any(job.missing)
        at += count


def _predict(jobs: list[Job]) -> None:
    import pandas as pd

    model = jobs[0].model
    scored = [job for job in jobs if not job.refused]
    if not scored:
        return
    frame = pd.DataFrame([{**row, **feats} for job in scored
                          for row, feats in zip(job.rows, job.features, strict=True)])
    scores = model.predict(frame)
    if getattr(scores, "ndim", 1) != 1:
        raise ValueError(f"{model.name} v{model.number} returns {scores.shape[1]} scores "
                         "per row; the server answers binary classifiers and regressors")
    at = 0
    for job in scored:
        job.scores = [float(s) for s in scores[at:at + len(job.rows)]]
        at += len(job.rows)


def _filled(values: dict[str, Any], policy: MissingFeatures) -> dict[str, Any]:
    if not policy.defaults:
        return values
    return {name: policy.defaults.get(name) if value is None and name in policy.defaults
            else value for name, value in values.items()}
