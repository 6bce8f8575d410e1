"""One lock per registered model, shared by every process and host that shares the registry.

The MLflow registry has no compare-and-set: "read the champion, move it, write the history
event" done by two processes at once leaves the aliases and the history telling different
stories. Every alias move therefore holds this lock for the whole read-decide-write.

Which lock depends on where the registry lives:

* PostgreSQL (`postgresql://`, `postgresql+<driver>://`): a session advisory lock in that
  database, keyed by a stable 64-bit hash of the model name. Every host that reaches the
  registry takes the same lock; it goes away with the connection if the holder dies.
* SQLite (`sqlite:///`): `flock` on `.loopline/locks/<db file>/<model>.lock` beside the
  database file (`.loopline/` is Loopline's git-ignored local state). Every process that can
  open the database can lock that file, and the kernel drops the lock if the holder dies.
  Over NFS, flock is only as good as the NFS server's locking.
* Anything else (an MLflow server over http(s), a file store): the lock cannot live in the
  registry. `$LOOPLINE_LOCK_URL` (a `postgresql://` URL that all writers share) is used when
  set; otherwise a file lock under `~/.loopline/locks`, which serialises this host only, and a
  one-line warning says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from loopline.spec.paths import sqlite_file

LOCK_URL_ENV = "LOOPLINE_LOCK_URL"
POLL_S = 0.05

_log = logging.getLogger(__name__)
_warned: set[str] = set()


class _Held:
    """This process's hold on one model's lock: a thread lock, and how deep the holding
    thread has nested. A move nested inside a held lock (crown inside rollback) must not wait
    for itself, as flock on a second descriptor or a second PostgreSQL session would."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0


_holds: dict[tuple[str, str], _Held] = {}
_holds_guard = threading.Lock()


class LockError(Exception):
    """The model's lock could not be taken; the message says why."""


class LockTimeout(LockError):
    """Another writer held the model's lock for longer than the timeout."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` (Python's hash() is salted)."""
    digest = hashlib.blake2b(f"loopline.model:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _is_postgres(uri: str) -> bool:
    return uri.startswith(("postgresql://", "postgresql+"))


@contextlib.contextmanager
def model_lock(registry_uri: str, name: str, timeout_s: float = 60) -> Iterator[None]:
    """Hold the lock for model `name` of the registry at `registry_uri`; LockTimeout after
    `timeout_s` seconds of waiting. Re-entrant within a thread."""
    with _holds_guard:
        hold = _holds.setdefault((registry_uri, name), _Held())
    if not hold.thread_lock.acquire(timeout=timeout_s):
        raise _timeout(name, "another thread of this process", timeout_s)
    try:
        hold.depth += 1
        if hold.depth > 1:
            yield
        else:
            with _acquire(registry_uri, name, timeout_s):
                yield
    finally:
        hold.depth -= 1
        hold.thread_lock.release()


def model_lock_depth(registry_uri: str, name: str) -> int:
    """How deep this process holds `name`'s lock (0: not at all); a holder that nests can
    tell its outermost hold from the inner ones."""
    hold = _holds.get((registry_uri, name))
    return hold.depth if hold is not None else 0


def _acquire(registry_uri: str, name: str,
             timeout_s: float) -> contextlib.AbstractContextManager[None]:
    if _is_postgres(registry_uri):
        return _postgres_lock(registry_uri, name, timeout_s)
    if (database := sqlite_file(registry_uri)) is not None:
        return _file_lock(database.parent / ".loopline" / "locks" / database.name, name,
                          timeout_s)
    if url := os.environ.get(LOCK_URL_ENV):
        if not _is_postgres(url):
            raise LockError(f"${LOCK_URL_ENV} must be a postgresql:// URL, not "
                            f"{_redact(url)!r}")
        return _postgres_lock(url, name, timeout_s)
    if registry_uri not in _warned:
        _warned.add(registry_uri)
        _log.warning("alias moves on %s are serialised on this host only; set $%s to a "
                     "postgresql:// URL shared by every writer", _redact(registry_uri),
                     LOCK_URL_ENV)
    registry = hashlib.sha1(registry_uri.encode()).hexdigest()[:12]
    return _file_lock(Path.home() / ".loopline" / "locks" / registry, name, timeout_s)


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _timeout(name: str, where: str, timeout_s: float) -> LockTimeout:
    return LockTimeout(f"another alias move of {name} held its lock ({where}) for over "
                       f"{timeout_s:g}s; try again, or look for a hung promote/rollback")


@contextlib.contextmanager
def _file_lock(folder: Path, name: str, timeout_s: float) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # two names, one safe form
    path = folder / f"{safe}-{digest}.lock"
    handle: IO[str] = open(path, "a")  # noqa: SIM115 - closed below, after unlocking
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _timeout(name, str(path), timeout_s) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


@contextlib.contextmanager
def _postgres_lock(url: str, name: str, timeout_s: float) -> Iterator[None]:
    """A session advisory lock on a connection of its own (not MLflow's pool, whose
    connections come and go): released by unlock, or by PostgreSQL if this process dies."""
    import sqlalchemy  # MLflow's SQL stores need it, so it is there whenever PostgreSQL is
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(_with_driver(url), poolclass=NullPool)
        opened = engine.connect()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise LockError(f"cannot take {name}'s lock on {_redact(url)}: "
                        f"{str(exc).splitlines()[0]}") from exc
    key = lock_key(name)
    try:
        with opened as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + timeout_s
            while not _scalar(connection, "SELECT pg_try_advisory_lock(:key)", key):
                if time.monotonic() >= deadline:
                    raise _timeout(name, f"PostgreSQL advisory lock {key}", timeout_s)
                time.sleep(POLL_S)
            try:
                yield
            finally:
                _scalar(connection, "SELECT pg_advisory_unlock(:key)", key)
    finally:
        engine.dispose()


def _with_driver(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy 2.1 then wants psycopg 3: use
    whichever driver is installed (psycopg2 comes with Loopline's PostgreSQL extras)."""
    from importlib.util import find_spec

    if url.startswith("postgresql://"):
        for driver in ("psycopg2", "psycopg"):
            if find_spec(driver) is not None:
                return f"postgresql+{driver}://" + url.removeprefix("postgresql://")
    return url


def _scalar(connection: Any, sql: str, key: int) -> Any:
    import sqlalchemy

    return connection.execute(sqlalchemy.text(sql), {"key": key}).scalar()
