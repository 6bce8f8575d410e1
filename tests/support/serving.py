"""A real `loopline serve` process on 127.0.0.1 for tests, and a trained example to serve."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import LOOPLINE, copy_example, subprocess_cli
from tests.support.services import free_port

READY_TIMEOUT_S = 120


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> tuple[int, Any]:
        return request(f"{self.url}{path}")

    def post(self, path: str, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
        return request(f"{self.url}{path}", raw if raw is not None else
                       json.dumps(body).encode())

    def output(self) -> str:
        return self.log.read_text()


def request(url: str, data: bytes | None = None, method: str | None = None,
            timeout: float = 30) -> tuple[int, Any]:
    """(status, parsed JSON or text) for one HTTP request; 4xx/5xx are answers, not errors."""
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


@contextlib.contextmanager
def served(project: Path, spec: str = "pipelines/flights.yaml", *extra: str,
           env: dict[str, str] | None = None) -> Iterator[Server]:
    """`loopline serve` as its own process; ready (model loaded) before the test goes on,
    stopped with SIGTERM (graceful: the log is flushed) unless the test killed it."""
    port = free_port()
    log = project / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*LOOPLINE, "serve", spec, "--host", "127.0.0.1", "--port", str(port), *extra],
            cwd=project, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(server: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"loopline serve exited {server.process.returncode}:\n"
                                 f"{server.output()}")
        with contextlib.suppress(OSError):
            status, _ = request(f"{server.url}/ready", timeout=2)
            if status == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"loopline serve not ready after {timeout_s} s:\n{server.output()}")


def trained_example(target: Path) -> Path:
    """The example on a quarter of the data (Jan-Feb train, March eval), trained once:
    champion v1 registered, its features materialized to the SQLite online store."""
    project = copy_example(target, data__last_month=3, data__eval_from="2013-03-01",
                           train__max_iter=60, gate__min_roc_auc=0.6)
    done = subprocess_cli("run", "pipelines/flights.yaml", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


def set_serve(project: Path, spec: str = "pipelines/flights.yaml", **values: Any) -> None:
    """Change keys of the spec's `serve:` block in place (e.g. refresh: 1s for a swap test)."""
    import yaml

    path = project / spec
    document = yaml.safe_load(path.read_text())
    serve = document.setdefault("serve", {}) or {}
    for key, value in values.items():
        node = serve
        *parents, last = key.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    document["serve"] = serve
    path.write_text(yaml.safe_dump(document, sort_keys=False))

