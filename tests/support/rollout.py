"""Challengers with known faults, registered for real, and traffic that carries labels.

A variant is the trained champion's own pipeline with one fault: every n-th model call
fails, every call is slower, or the scores are worse (inverted, or blurred towards 0.5).
It is logged with MLflow's sklearn flavour (cloudpickle, by value, so the server process
loads it without this test package on its path) and takes v1's model card, so it serves
with v1's schema and counts as verified.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.support import mlflow_uris_restored, registry_client
from tests.support.live_monitoring import MODEL

INPUTS = ["carrier", "origin", "distance", "sched_dep_time"]
ROLLOUT = """
rollout:
  steps: [5, 25, 50, 100]
  min_requests: 40
  min_duration: 0s
  max_duration: 2m
  every: 1s
  gates:
    metric: {{min_labels: 150, tau: 0.05}}
alerts:
  routes:
    - {{to: webhook, secret: LOOPLINE_TEST_HOOK, events: ["rollout.*"]}}
secrets:
  LOOPLINE_TEST_HOOK: {{secret: loopline-alerts, key: hook, optional: true}}
"""


class Variant:
    """`inner` (a fitted sklearn Pipeline) with one fault."""

    def __init__(self, inner: Any, error_every: int = 0, delay_s: float = 0.0,
                 invert: bool = False, blur: float = 0.0) -> None:
        self.inner, self.error_every, self.delay_s = inner, error_every, delay_s
        self.invert, self.blur, self.calls = invert, blur, 0

    @property
    def named_steps(self) -> Any:  # the server reads the transform from here
        return self.inner.named_steps

    @property
    def classes_(self) -> Any:
        return self.inner.classes_

    def predict_proba(self, frame: Any) -> Any:
        self.calls += 1
        if self.error_every and self.calls % self.error_every == 0:
            raise RuntimeError("injected failure")
        if self.delay_s:
            time.sleep(self.delay_s)
        proba = self.inner.predict_proba(frame)
        if self.invert:
            proba = proba[:, ::-1]
        if self.blur:
            positive = 0.5 + (proba[:, 1] - 0.5) * (1 - self.blur)
            proba = np.column_stack([1 - positive, positive])
        return proba

    def predict(self, frame: Any) -> Any:
        return (self.predict_proba(frame)[:, 1] >= 0.5).astype(int)


def register_variant(project: Path, **fault: Any) -> str:
    """Register v1 with `fault` as a new version carrying v1's tags; its number."""
    import cloudpickle
    import mlflow

    from loopline.integrations.mlflow_registry import point_mlflow_at
    from tests.support import rollout as this

    client = registry_client(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    with mlflow_uris_restored():
        point_mlflow_at(uri, uri)
        inner = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
        cloudpickle.register_pickle_by_value(this)
        try:
            with mlflow.start_run(run_name=f"variant {fault}"):
                logged = mlflow.sklearn.log_model(
                    Variant(inner, **fault), name="model", serialization_format="cloudpickle",
                    pip_requirements=[], registered_model_name=MODEL)
        finally:
            cloudpickle.unregister_pickle_by_value(this)
    version = str(logged.registered_model_version)
    for key, value in (client.get_model_version(MODEL, "1").tags or {}).items():
        client.set_model_version_tag(MODEL, version, key, value)
    return version


def flights(project: Path) -> pd.DataFrame:
    """The init project's flights with their true label (late: arr_delay > 15)."""
    frame = pd.read_csv(project / "data" / "flights_sample.csv")
    frame = frame[frame["arr_delay"].notna()].reset_index(drop=True)
    frame["late"] = frame["arr_delay"] > 15
    return frame


@dataclass
class Answer:
    at: float
    status: int
    version: str
    prediction: float | None
    elapsed_s: float


@dataclass
class Traffic:
    """Requests in a loop on one kept-alive connection until stopped; each answer kept."""

    port: int
    rows: pd.DataFrame
    prefix: str = "r"
    keys: list[str] | None = None  # x-routing-key per request (default: the request id)
    answers: list[Answer] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    limit: int = 100_000

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        while not self.stop.is_set() and i < self.limit:
            row = self.rows.iloc[i % len(self.rows)]
            request_id = f"{self.prefix}{i}"
            headers = {"content-type": "application/json", "x-request-id": request_id}
            if self.keys:
                headers["x-routing-key"] = self.keys[i % len(self.keys)]
            body = json.dumps({"inputs": {c: _plain(row[c]) for c in INPUTS}})
            started = time.perf_counter()
            connection.request("POST", "/predict", body, headers)
            response = connection.getresponse()
            payload = json.loads(response.read())
            elapsed = time.perf_counter() - started
            self.answers.append(Answer(time.monotonic(), response.status,
                                       str(payload.get("version", "")),
                                       payload.get("prediction"), elapsed))
            self.ids.append(request_id)
            i += 1
        connection.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def labels_for(traffic: Traffic) -> pd.DataFrame:
    """The true label of every request sent so far, keyed by request id (as `loopline
    feedback --by request_id` keeps them)."""
    count = len(traffic.ids)
    late = traffic.rows["late"].to_numpy()
    return pd.DataFrame({"request_id": traffic.ids[:count],
                         "label": [bool(late[i % len(late)]) for i in range(count)]})
