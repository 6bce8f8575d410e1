"""Real rows replayed as requests against a running server: throughput and latency percentiles.

`loopline replay` (and `make demo`) sends rows of a table — the example: July 2013 flights —
as `/predict` requests, each carrying only what the server's `/schema` asks for, over
kept-alive connections, bounded in requests and time. With no `--url` it starts
`loopline serve` for the spec itself and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopline.serving import loadgen


@dataclass(frozen=True)
class ReplayPlan:
    source: str
    filter: str | None = None
    time_column: str | None = None
    requests: int = 2000
    concurrency: int = 8
    seconds: float = 30.0
    rate: float | None = None


def request_bodies(frame: Any, schema: dict[str, Any], time_column: str | None) -> list[bytes]:
    """One `/predict` body per row: the schema's fields, times as ISO 8601 UTC, NaN as null."""
    import pandas as pd

    from loopline.ml.time_columns import to_utc

    fields = {f["name"]: f["type"] for f in schema["fields"]}
    if missing := [name for name in fields if name not in frame.columns]:
        raise ValueError(f"the rows lack field(s) the server needs: {', '.join(missing)}")
    rows = frame[list(fields)].copy()
    for name, kind in fields.items():
        if kind == "timestamp":
            rows[name] = to_utc(rows[name]).map(lambda t: None if pd.isna(t) else t.isoformat())
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [json.dumps({"inputs": record}, default=_plain).encode() for record in records]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def load_rows(plan: ReplayPlan, project_root: Path) -> Any:
    from loopline.integrations.tables import read_table
    from loopline.ml import expressions

    frame = read_table(plan.source, project_root)
    if plan.filter:
        frame = frame[expressions.evaluate(plan.filter, frame).astype(bool)]
    if plan.time_column:
        frame = frame.sort_values(plan.time_column, kind="stable")
    return frame.head(plan.requests).reset_index(drop=True)


def fetch_schema(url: str, timeout_s: float = 10) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/schema", timeout=timeout_s) as response:
        return dict(json.loads(response.read()))


def replay(url: str, plan: ReplayPlan, project_root: Path) -> loadgen.Result:
    schema = fetch_schema(url)
    bodies = request_bodies(load_rows(plan, project_root), schema, plan.time_column)
    if not bodies:
        raise ValueError(f"no rows to replay from {plan.source}"
                         + (f" where {plan.filter}" if plan.filter else ""))
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    requests = [loadgen.post(host, port, "/predict", body) for body in bodies]
    return loadgen.run(host, port, requests, count=min(plan.requests, len(requests))
                       if plan.rate is None else plan.requests,
                       concurrency=plan.concurrency, time_limit_s=plan.seconds,
                       rate=plan.rate)


def summary(result: loadgen.Result, what: str) -> str:
    return (f"replayed {result.sent:,} {what} in {result.elapsed_s:.1f} s: "
            f"{result.throughput:.0f} requests/s at concurrency {result.concurrency}, "
            f"p50 {result.p(50):.1f} ms, p95 {result.p(95):.1f} ms, p99 {result.p(99):.1f} ms, "
            f"{result.failed} failed")


@contextlib.contextmanager
def local_server(spec: str, overrides: list[str], port: int,
                 ready_timeout_s: float = 180) -> Iterator[str]:
    """`loopline serve SPEC` as a child process on 127.0.0.1:`port`, stopped gracefully."""
    command = [sys.executable, "-m", "loopline", "serve", spec, "--host", "127.0.0.1",
               "--port", str(port)]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"loopline serve exited with {process.returncode}")
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"loopline serve not ready after {ready_timeout_s:.0f} s")
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
