"""Real services on loopback for tests: a fresh PostgreSQL database, an `mlflow server`."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support import require_service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_database(prefix: str = "loopline", template: str | None = None) -> Iterator[str]:
    """A new database on 127.0.0.1:5432 (a copy of `template`), dropped afterwards; yields
    its name."""
    require_service("PostgreSQL", 5432)
    import psycopg2

    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {database}"
                           + (f" TEMPLATE {template}" if template else ""))
    try:
        yield database
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


REDIS_CLAIM = "loopline-tests:claimed-by"


@contextlib.contextmanager
def claimed_redis_db() -> Iterator[int]:
    """A Redis database (1-15) on 127.0.0.1:6379 of the caller's own, empty at the start and
    flushed at the end. Claimed with SET NX in the database itself, so parallel tests (pytest
    -n, another checkout, a benchmark) never share one; databases holding anyone else's keys
    are left alone."""
    import os

    import redis

    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    for db in range(1, 16):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if not client.set(REDIS_CLAIM, token, nx=True, ex=3600):
            client.close()
            continue
        if client.dbsize() == 1:  # only our claim: the database is ours
            break
        client.delete(REDIS_CLAIM)
        client.close()
    else:
        raise RuntimeError("no free Redis database among 1-15 on 127.0.0.1:6379")
    try:
        yield db
    finally:
        client.flushdb()
        client.close()


def postgres_url(database: str, driver: str = "psycopg2") -> str:
    return f"postgresql+{driver}://postgres@127.0.0.1:5432/{database}"


@contextlib.contextmanager
def mlflow_server(log: Path, artifacts_destination: str,
                  env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `mlflow server` on loopback over a fresh PostgreSQL database, serving artifacts
    from `artifacts_destination` (a folder, or s3://... with `env` pointing at the bucket)."""
    import os

    with postgres_database() as database:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--backend-store-uri", postgres_url(database),
             "--artifacts-destination", artifacts_destination, "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env={**os.environ, **(env or {})})
        try:
            deadline = time.time() + 120
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert server.poll() is None, log.read_text()
                    assert time.time() < deadline, "mlflow server did not start"
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)
