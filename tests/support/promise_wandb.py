"""Read what a W&B offline run wrote: its `.wandb` file, with wandb's own record schema.

wandb 0.31 writes the file from its Go core and ships no Python reader, so the framing is read
here: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then LevelDB-log blocks of 32 KiB whose
records (4-byte checksum, 2-byte length, 1-byte type: full, first, middle, last) carry one
serialised `wandb_internal_pb2.Record` each.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> list[bytes]:
    if not data.startswith(HEADER):
        raise ValueError(f"not a W&B run file (header {data[:7]!r})")
    pos, pending, out = len(HEADER), b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a record header: padding
            pos += BLOCK - pos % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        if zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF != checksum:
            raise ValueError(f"corrupt record at byte {pos - 7 - length}")
        if kind == FULL:
            out.append(payload)
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            out.append(pending + payload)
            pending = b""
    return out


@dataclass
class OfflineRun:
    run_id: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def logged(self) -> dict[str, Any]:
        """Every key the run logged, with its last value."""
        merged: dict[str, Any] = {}
        for row in self.history:
            merged.update({k: v for k, v in row.items() if not k.startswith("_")})
        return merged


def read_offline_run(folder: Path, wait_s: float = 60.0) -> OfflineRun:
    """The run record, config updates and history rows of `wandb/offline-run-*/run-*.wandb`.

    wandb's core process writes the file on its own schedule: `finish()` can return before
    the records are on disk on a loaded machine, so this waits (bounded) for the run's exit
    record, which wandb writes last."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            run, finished = _read(folder)
        except ValueError:  # a record half written right now
            if time.monotonic() > deadline:
                raise
            finished = False
        else:
            if finished or time.monotonic() > deadline:
                return run
        time.sleep(0.2)


def _read(folder: Path) -> tuple[OfflineRun, bool]:
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("run-*.wandb")
    run, finished = OfflineRun(), False
    for payload in _payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            # wandb may write the run record again (an update) with fields left empty
            run.run_id = record.run.run_id or run.run_id
            run.name = record.run.display_name or run.name
            run.config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                for i in record.history.item})
        elif kind == "exit":
            finished = True
    return run, finished
