"""Content hashes of files and folders (md5, as DVC uses), with a stat cache for big sources."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from loopline.integrations.filesystems import filesystem, is_object_store

CHUNK = 1 << 20
# What an object store says about an object, content checksums first: an object uploaded
# again with the same bytes keeps its version. Without any, the times and the size.
# A version id (S3 versioned buckets, GCS's generation) changes when the same bytes are
# uploaded again, so it counts only where the store gives no checksum.
_CHECKSUMS = ("ETag", "etag", "md5Hash", "crc32c", "content_md5")
_FALLBACKS = ("VersionId", "generation", "LastModified", "last_modified", "updated", "mtime",
              "created")


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


def _object_fields(info: dict[str, Any]) -> dict[str, Any]:
    checksums = {k: info[k] for k in _CHECKSUMS if info.get(k)}
    settings = info.get("content_settings")  # Azure keeps the MD5 one level down
    if isinstance(settings, dict) and settings.get("content_md5"):
        checksums["content_md5"] = settings["content_md5"]
    if checksums:  # the first the store gives: one kind of fact, whichever store it is
        first = next(iter(checksums))
        return {first: checksums[first], "size": info.get("size")}
    return {**{k: info[k] for k in _FALLBACKS if info.get(k)}, "size": info.get("size")}


def object_version(uri: str) -> str:
    """A version of the object (or every object under a prefix) at `uri`, from the store's
    metadata (ETag, MD5, generation, else modification time) and size: no download. "missing"
    when there is none; when the store cannot be asked (no credentials, no fsspec package
    for it), a value that never repeats, so no cached result is reused on a guess."""

    try:
        fs, path = filesystem(uri)
        fs.invalidate_cache(path)  # a listing this process cached may predate an overwrite
        info = fs.info(path)
        if info.get("type") == "directory":
            found = fs.find(path, detail=True)
            fields: Any = sorted((name, _object_fields(entry)) for name, entry in found.items())
        else:
            fields = _object_fields(info)
    except FileNotFoundError:
        return "missing"
    except Exception:  # noqa: BLE001 - reading the source will say what is wrong, clearly
        return f"unknown-{time.time_ns()}"
    return hashlib.md5(json.dumps(fields, sort_keys=True, default=str).encode(),
                       usedforsecurity=False).hexdigest() + ".obj"


class StatCache:
    """Remembers hashes by (path, size, mtime) so unchanged big sources are not re-read."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            self.entries: dict[str, list[object]] = json.loads(file.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def hash(self, path: Path | str) -> str:
        """Content md5 of a local file or folder; the store's version of an object URI."""
        if isinstance(path, str) and is_object_store(path):
            return object_version(path)  # one metadata request; nothing to remember
        path = Path(path)
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
