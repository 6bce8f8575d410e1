"""Helpers for Airflow tests: each test gets its own AIRFLOW_HOME and runs Airflow in
subprocesses, so configuration never leaks between tests or into the test process."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from loopline.components.contract import (
    Component,
    ComponentParams,
    Output,
    StepContext,
    StepResult,
)
from tests.support import REPO

BIN = Path(sys.executable).parent


def airflow_env(home: Path, pipelines: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LOOPLINE_PIPELINES_DIR": str(pipelines),
        "PYTHONPATH": str(REPO),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GX_ANALYTICS_ENABLED": "False",
        **extra,
    }


def python(code: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=env["AIRFLOW_HOME"])


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


class PortTaken(AssertionError):
    """The port went to another process between picking it and our server binding it:
    start again on another port."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port that is free now, for a server that binds it a moment later.

    Not `bind(0)`: that hands out ports from the kernel's ephemeral range, the same range every
    outgoing connection (to PostgreSQL, Redis, the API) takes its local port from, so under
    `pytest -n 2` the port is soon someone else's. Here: a random port just below that range,
    probed with SO_REUSEADDR as servers bind. A clash is still possible, so servers started on
    it are checked with `wait_for_port` (which raises PortTaken) and started again."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1025, low - 12000), low)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: fall back on the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening_pids(port: int, processes: list[subprocess.Popen[bytes]]) -> set[int]:
    """Which of our processes (or their children) listen on the port."""
    import psutil

    found = set()
    for process in processes:
        try:
            tree = [psutil.Process(process.pid)]
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for member in tree:
            try:
                connections = member.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in connections):
                found.add(member.pid)
    return found


def _logs_text(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted(logs.glob("*.log")))


def _check_alive(processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    for process in processes:
        if process.poll() is not None:
            text = _logs_text(logs)
            kind = PortTaken if ("Address already in use" in text or "Errno 98" in text) \
                else AssertionError
            raise kind(f"an Airflow process exited early; logs in {logs}:\n{text}")


def wait_for_port(port: int, processes: list[subprocess.Popen[bytes]], logs: Path,
                  timeout: float = 180) -> None:
    """Until one of `processes` listens on the port. Raises PortTaken when the port turns out
    to be another process's (it answers, but none of ours listens on it, or ours died with
    EADDRINUSE), AssertionError when a process exits early or nothing listens in time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _check_alive(processes, logs)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            time.sleep(1)
            continue
        for _ in range(10):  # a forking server may bind in a child a moment later
            if _listening_pids(port, processes):
                return
            _check_alive(processes, logs)
            time.sleep(1)
        raise PortTaken(f"port {port} answers, but none of our processes listens on it")
    raise AssertionError(f"port {port} never opened; logs in {logs}:\n{_logs_text(logs)}")


def wait_for_celery_workers(broker_url: str, names: list[str],
                            processes: list[subprocess.Popen[bytes]], logs: Path,
                            timeout: float = 180) -> dict[str, object]:
    """Until every named Celery worker answers a ping through the broker (the API port being
    open says nothing about the workers). Returns the replies, by worker node name."""
    from celery import Celery

    app = Celery(broker=broker_url)
    deadline = time.time() + timeout
    answered: dict[str, object] = {}
    try:
        while time.time() < deadline:
            _check_alive(processes, logs)
            for reply in app.control.ping(timeout=1.0) or []:
                answered.update(reply)
            if all(any(node.split("@", 1)[0] == name for node in answered) for name in names):
                return answered
            time.sleep(1)
    finally:
        app.close()
    raise AssertionError(f"Celery workers {names} never answered a ping (got "
                         f"{sorted(answered)}); logs in {logs}:\n{_logs_text(logs)}")


def hostname() -> str:
    """`[core] hostname_callable` for the Celery test: each worker reports its own name."""
    return os.environ.get("LOOPLINE_TEST_WORKER") or socket.getfqdn()


def second_interpreter(target: Path) -> Path:
    """A Python environment of its own at `target` (its own `sys.executable` and
    `sys.prefix`) that sees this venv's packages: what `isolation: external_python` points
    at, so a step can show which interpreter really ran it."""
    result = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ours = next(Path(p) for p in sys.path if p.endswith("site-packages")
                and Path(p).resolve().is_relative_to(Path(sys.prefix).resolve()))
    (site,) = target.glob("lib/python*/site-packages")
    (site / "_loopline_tests.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    return target / "bin" / "python"


class WhereParams(ComponentParams):
    pass


def run_where(ctx: StepContext, params: WhereParams) -> StepResult:
    """Writes down the interpreter and process that ran the step."""
    ctx.output_path("data").write_text(json.dumps({
        "executable": sys.executable, "prefix": sys.prefix, "pid": os.getpid()}))
    return StepResult(metrics={"pid": os.getpid()})


WHERE = Component(
    name="tests.where", version="1", description="records which interpreter ran it",
    params=WhereParams, run=run_where, outputs={"data": Output("where.json", "dataset")},
)
