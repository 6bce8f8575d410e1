"""Real rows replayed through a rollout, their true outcomes fed back later as labels.

`loopline replay SPEC ... --labels "arr_delay > 15" --rollout` (and `make rollout`): the
server and `loopline rollout watch --until-done` run as child processes; rows are sent in
chunks, each request with its own id; after a chunk is answered its labels are written as
`loopline feedback` writes them (so they arrive one chunk late, as real outcomes do); the
replay stops once the controller has promoted or rolled the challenger back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loopline.integrations import prediction_labels
from loopline.serving import loadgen
from loopline.serving.replay import ReplayPlan, fetch_schema, load_rows, request_bodies
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location

CHUNK = 500


@dataclass
class RolloutReplay:
    sent: int = 0
    failed: int = 0
    labelled: int = 0
    chunks: list[loadgen.Result] = field(default_factory=list)
    controller_exit: int | None = None


@contextlib.contextmanager
def controller(spec: str, overrides: list[str], timeout_s: float) -> Iterator[Any]:
    """`loopline rollout watch SPEC --until-done` as a child process (its output is ours)."""
    command = [sys.executable, "-m", "loopline", "rollout", "watch", spec, "--until-done",
               "--timeout", str(timeout_s)]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def replay_rollout(url: str, loaded: LoadedSpec, plan: ReplayPlan, labels: str,
                   watcher: Any) -> RolloutReplay:
    """Chunks of requests until the watcher exits or the rows or the time run out."""
    from loopline.ml import expressions

    frame = load_rows(plan, loaded.project_root)
    bodies = request_bodies(frame, fetch_schema(url), plan.time_column)
    truth = expressions.evaluate(labels, frame).astype(bool).tolist()
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    root = location(loaded.spec.artifacts.root, loaded.project_root)
    folder = prediction_labels.labels_folder(root, loaded.spec.registry.model_name)  # type: ignore[union-attr]
    out = RolloutReplay()
    stamp = f"replay-{int(time.time())}"
    deadline = time.monotonic() + plan.seconds
    previous_ids: list[str] = []
    previous_truth: list[bool] = []
    for start in range(0, len(bodies), CHUNK):
        if watcher.poll() is not None or time.monotonic() >= deadline:
            break
        ids = [f"{stamp}-{i}" for i in range(start, min(start + CHUNK, len(bodies)))]
        requests = [loadgen.post(host, port, "/predict", bodies[start + k],
                                 {"x-request-id": rid}) for k, rid in enumerate(ids)]
        result = loadgen.run(host, port, requests, count=len(requests),
                             concurrency=plan.concurrency, time_limit_s=plan.seconds,
                             rate=plan.rate)
        out.chunks.append(result)
        out.sent += result.sent
        out.failed += result.failed
        if previous_ids:  # the previous chunk's outcomes are known now
            _label(folder, previous_ids, previous_truth)
            out.labelled += len(previous_ids)
        previous_ids, previous_truth = ids, truth[start:start + len(ids)]
    out.controller_exit = watcher.poll()
    return out


def _label(folder: str, ids: list[str], truth: list[bool]) -> None:
    import pandas as pd

    prediction_labels.write(folder, pd.DataFrame({"request_id": ids, "label": truth}))


def summary(result: RolloutReplay) -> str:
    latencies = [ms for chunk in result.chunks for ms in chunk.latencies_ms]
    return (f"replayed {result.sent:,} requests ({result.failed} failed), labelled "
            f"{result.labelled:,} one chunk later; p50 {loadgen.percentile(latencies, 50):.1f} "
            f"ms, p99 {loadgen.percentile(latencies, 99):.1f} ms")
