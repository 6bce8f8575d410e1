"""The prediction log: hour partitions, whole files only, readable while written, any store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from loopline.integrations import prediction_log as plog

T0 = datetime(2026, 11, 26, 7, 58, tzinfo=UTC)


def _rows(count: int, start: datetime = T0, version: str = "3") -> list[dict]:
    return [plog.row(f"r{i}", start + timedelta(seconds=30 * i), version, "champion", 200,
                     4.0 + i, 0.1 * (i % 10), ["temp"] if i % 4 == 0 else [], None,
                     {"origin": "EWR", "distance": 100.0 + i, "temp": None if i % 4 == 0
                      else 50.0})
            for i in range(count)]


def test_a_flush_across_the_hour_writes_one_file_per_hour(tmp_path: Path) -> None:
    folder = plog.log_folder(str(tmp_path / "artifacts"), "m")
    log = plog.PredictionLog(folder, flush_rows=10_000, flush_every_s=3600)
    log.append(_rows(10))  # 07:58:00 .. 08:02:30
    log.close()
    hours = sorted(p.parent.relative_to(Path(folder)).as_posix()
                   for p in Path(folder).rglob("*.parquet"))
    assert hours == ["date=2026-11-26/hour=07", "date=2026-11-26/hour=08"]
    frame = plog.read(folder)
    assert list(frame["request_id"]) == [f"r{i}" for i in range(10)]
    assert frame["missing_features"].tolist()[:2] == ["temp", ""]
    assert str(frame["time"].dt.tz) == "UTC"
    later = plog.read(folder, since=T0 + timedelta(minutes=2))
    assert list(later["request_id"]) == ["r4", "r5", "r6", "r7", "r8", "r9"]


def test_rows_become_a_file_by_count_and_by_age(tmp_path: Path) -> None:
    folder = str(tmp_path / "log")
    log = plog.PredictionLog(folder, flush_rows=5, flush_every_s=0.2)
    log.append(_rows(5, T0 + timedelta(minutes=5)))  # all in hour 08: one file
    import time

    deadline = time.monotonic() + 5
    while log.files_written < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.files_written == 1  # by count, without waiting for the age
    log.append(_rows(2, T0 + timedelta(minutes=10)))
    while log.files_written < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.files_written == 2 and log.rows_written == 7  # by age
    log.close()
    assert len(plog.read(folder)) == 7


def test_a_reader_never_sees_a_file_in_flight(tmp_path: Path) -> None:
    folder = str(tmp_path / "log")
    plog.write_file(folder, _rows(3))
    partition = next(Path(folder).rglob("*.parquet")).parent
    (partition / ".123-host-1-1.parquet.tmp").write_bytes(b"PAR1 half a file")
    (partition / ".half.parquet").write_bytes(b"PAR1")
    (Path(folder) / "labels").mkdir()
    pd.DataFrame({"request_id": ["r1"], "label": [1]}).to_parquet(
        Path(folder) / "labels" / "1.parquet")
    assert len(plog.files(folder)) == 1
    assert len(plog.read(folder)) == 3


def test_an_object_store_gets_whole_objects(tmp_path: Path) -> None:
    folder = f"memory://loopline-{uuid.uuid4().hex}/predictions/m"
    log = plog.PredictionLog(folder, flush_rows=4, flush_every_s=60)
    log.append(_rows(4))
    log.close()
    assert [u.rsplit("/", 3)[1:3] for u in plog.files(folder)] == [
        ["date=2026-11-26", "hour=07"]]
    assert plog.read(folder)["distance"].tolist() == [100.0, 101.0, 102.0, 103.0]


def test_an_empty_log_reads_as_no_rows_with_the_log_columns(tmp_path: Path) -> None:
    frame = plog.read(str(tmp_path / "nothing"))
    assert frame.empty and set(plog.LOG_COLUMNS) <= set(frame.columns)


def test_a_failed_write_is_counted_and_serving_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = plog.PredictionLog(str(blocker / "log"), flush_rows=1, flush_every_s=60)
    log.append(_rows(1))
    log.close()
    assert log.errors >= 1 and log.rows_written == 0


def test_a_file_keeps_every_rows_columns_and_older_files_read_alongside(tmp_path: Path) -> None:
    """A 5xx row (no features) first in a flush must not drop the next rows' features, and a
    column newer files have is read as null from older ones."""
    folder = str(tmp_path / "log")
    failed = plog.row("e1", T0, "3", "champion", 500, 2.0, None, (), "lookup failed",
                      {"origin": "EWR"})
    plog.write_file(folder, [failed, *_rows(2, T0 + timedelta(seconds=1))])
    newer = [{**r, "visib": 10.0} for r in _rows(1, T0 + timedelta(minutes=1))]
    plog.write_file(folder, newer)
    frame = plog.read(folder, columns=["request_id", "temp", "visib"])
    assert frame["request_id"].tolist() == ["e1", "r0", "r1", "r0"]
    assert frame["temp"].isna().tolist() == [True, True, False, True]  # r0: missing temp
    assert frame["visib"].isna().tolist() == [True, True, True, False]
