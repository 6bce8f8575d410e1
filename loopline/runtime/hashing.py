"""Content hashes of files and folders (md5, as DVC uses), with a stat cache for big sources."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def path_md5(path: Path) -> str:
    """md5 of a file, or of a folder's sorted (relative name, file md5) list."""
    if path.is_file():
        return file_md5(path)
    entries = sorted((str(p.relative_to(path)), file_md5(p)) for p in path.rglob("*")
                     if p.is_file())
    return hashlib.md5(json.dumps(entries).encode(), usedforsecurity=False).hexdigest() + ".dir"


def stable_hash(value: object) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class StatCache:
    """Remembers hashes by (path, size, mtime) so unchanged big sources are not re-read."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            self.entries: dict[str, list[object]] = json.loads(file.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def hash(self, path: Path) -> str:
        if not path.exists():
            return "missing"
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        cached = self.entries.get(str(path))
        if cached and cached[:2] == signature:
            return str(cached[2])
        value = path_md5(path)
        self.entries[str(path)] = [*signature, value]
        self.dirty = True
        return value

    def save(self) -> None:
        if not self.dirty:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.file)
        self.dirty = False
