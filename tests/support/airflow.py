"""Helpers for Airflow tests: each test gets its own AIRFLOW_HOME and runs Airflow in
subprocesses, so configuration never leaks between tests or into the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, processes: list[subprocess.Popen[bytes]], logs: Path,
                  timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"an Airflow process exited early; logs in {logs}:\n"
                                     + "\n".join(p.read_text()[-2000:] for p in
                                                 logs.glob("*.log")))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"port {port} never opened")


def hostname() -> str:
    """`[core] hostname_callable` for the Celery test: each worker reports its own name."""
    return os.environ.get("LOOPLINE_TEST_WORKER") or socket.getfqdn()
