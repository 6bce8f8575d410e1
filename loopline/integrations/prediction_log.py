"""The prediction log: every served prediction, append-only Parquet under the artifact root.

    <artifacts root>/predictions/<model>/date=YYYY-MM-DD/hour=HH/<ms>-<host>-<pid>-<seq>.parquet

One file per flush (rows or seconds, whichever comes first), never appended to or rewritten:
a local file is written under a dot-name and renamed into place, an object is uploaded in one
put. A reader (drift, live checks, `loopline dashboard`) skips dot-files, so it never sees half
a file, also while servers write or after one was killed. Rows still buffered when a server
is killed are lost (at most `flush_every` of traffic); rows on disk never are.

Columns: the `LOG_COLUMNS` below, then one column per raw input and per feature used, named
as in the training rows and in `predict.batch`'s scored batches, so drift reads either.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.integrations.filesystems import filesystem, write_whole

if TYPE_CHECKING:
    import pandas as pd

FOLDER = "predictions"
REQUEST_ID = "request_id"
TIME = "time"
MODEL_VERSION = "model_version"  # the same name predict.batch gives it
ROUTE = "route"  # champion; canary / shadow under a rollout
STATUS = "status"  # the HTTP status of the answer
LATENCY_MS = "latency_ms"
PREDICTION = "prediction"  # the same name predict.batch gives it
MISSING = "missing_features"  # comma-separated names the online store had no value for
ERROR = "error"
LOG_COLUMNS = (REQUEST_ID, TIME, MODEL_VERSION, ROUTE, STATUS, LATENCY_MS, PREDICTION,
               MISSING, ERROR)
_HOST = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40]


def log_folder(artifacts_root: str, model_name: str) -> str:
    """Where `model_name`'s predictions are logged: an absolute path or a URI."""
    return f"{artifacts_root.rstrip('/')}/{FOLDER}/{model_name}"


def partition(moment: datetime) -> str:
    """`date=2026-11-26/hour=07`, Hive-style so pyarrow/DuckDB/Spark read the folder as is."""
    moment = moment.astimezone(UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def write_file(folder: str, rows: list[dict[str, Any]], name: str | None = None) -> str:
    """One Parquet file of `rows` in its hour's partition, complete before it appears."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = rows[0][TIME]
    name = name or f"{int(time.time() * 1000)}-{_HOST}-{os.getpid()}-{_next_seq()}.parquet"
    target = f"{folder}/{partition(first)}"
    names = list(dict.fromkeys(name for row in rows for name in row))  # every row's columns
    table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    return write_whole(target, name, lambda path: pq.write_table(table, path))


_seq_lock = threading.Lock()
_seq = 0


def _next_seq() -> int:
    global _seq
    with _seq_lock:
        _seq += 1
        return _seq


class PredictionLog:
    """A buffer that becomes a file every `flush_rows` rows or `flush_every_s` seconds.

    `append` is cheap (a list append under a lock) and never blocks on I/O: a background
    thread writes. `close` flushes what is left (a server's graceful shutdown)."""

    def __init__(self, folder: str, flush_rows: int = 2000, flush_every_s: float = 5.0) -> None:
        self.folder = folder
        self.flush_rows = flush_rows
        self.flush_every_s = flush_every_s
        self.files_written = 0
        self.rows_written = 0
        self.errors = 0
        self._rows: list[dict[str, Any]] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            if not self._rows:
                self._oldest = time.monotonic()
            self._rows.extend(rows)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()

    def _take(self, force: bool) -> list[dict[str, Any]]:
        with self._lock:
            due = self._rows and (force or len(self._rows) >= self.flush_rows or
                                  time.monotonic() - self._oldest >= self.flush_every_s)
            if not due:
                return []
            rows, self._rows = self._rows, []
            return rows

    def flush(self) -> None:
        """Write what is buffered now (tests, shutdown)."""
        self._write(self._take(force=True))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            for hour_rows in _by_hour(rows):
                write_file(self.folder, hour_rows)
                self.files_written += 1
                self.rows_written += len(hour_rows)
        except Exception as exc:  # noqa: BLE001 - a full disk or lost bucket must not stop serving
            self.errors += 1
            print(f"prediction log: {len(rows)} rows not written to {self.folder}: "
                  f"{type(exc).__name__}: {exc}", flush=True)

    def _loop(self) -> None:
        tick = min(1.0, max(0.05, self.flush_every_s / 4))
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            self._write(self._take(force=False))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


def _by_hour(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their hour partition (a flush across the hour writes two files)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(partition(row[TIME]), []).append(row)
    return list(groups.values())


def files(folder: str, since: datetime | None = None,
          until: datetime | None = None) -> list[str]:
    """Finished log files whose hour overlaps [since, until], oldest first."""
    fs, path = filesystem(folder)
    if not fs.isdir(path):
        return []
    low = None if since is None else partition(since.replace(minute=0, second=0, microsecond=0))
    high = None if until is None else partition(until)
    found = []
    for name in fs.find(path):
        relative = name[len(path.rstrip("/")) + 1:] if name.startswith(path) else name
        parts = relative.split("/")
        if len(parts) != 3 or not parts[-1].endswith(".parquet") or parts[-1].startswith("."):
            continue
        hour = "/".join(parts[:2])
        if (low is None or hour >= low) and (high is None or hour <= high):
            found.append(relative)
    prefix = folder.rstrip("/")
    return [f"{prefix}/{relative}" for relative in sorted(found)]


def read(folder: str, since: datetime | None = None, until: datetime | None = None,
         columns: list[str] | None = None) -> pd.DataFrame:
    """The log between `since` and `until` (UTC) as one frame, in time order; empty (with the
    log's columns) when nothing was served."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if columns is not None and TIME not in columns:
        columns = [TIME, *columns]  # the window is cut on it
    tables = []
    for uri in files(folder, since, until):
        fs, path = filesystem(uri)
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            wanted = None if columns is None else \
                [c for c in columns if c in parquet.schema_arrow.names]  # older files: fewer
            tables.append(parquet.read(columns=wanted))
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns or LOG_COLUMNS})
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    frame[TIME] = pd.to_datetime(frame[TIME], utc=True)
    if since is not None:
        frame = frame[frame[TIME] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame[TIME] <= pd.Timestamp(until)]
    return frame.sort_values(TIME, kind="stable").reset_index(drop=True)


def recent(folder: str, window_s: float, now: datetime | None = None,
           columns: list[str] | None = None) -> pd.DataFrame:
    """The last `window_s` seconds of the log."""
    now = now or datetime.now(UTC)
    return read(folder, now - timedelta(seconds=window_s), now, columns)


def row(request_id: str, moment: datetime, version: str, route: str, status: int,
        latency_ms: float, prediction: float | None, missing: Iterable[str] = (),
        error: str | None = None, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One log row; `values` are the raw inputs and the features the model was given."""
    out: dict[str, Any] = dict(values or {})
    out.update({REQUEST_ID: request_id, TIME: moment, MODEL_VERSION: version, ROUTE: route,
                STATUS: status, LATENCY_MS: latency_ms, PREDICTION: prediction,
                MISSING: ",".join(missing), ERROR: error})
    return out
