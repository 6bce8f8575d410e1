"""Where step outputs live: `<root>/<pipeline>/<step>/<file>`, plus a manifest written last.

A step's outputs count as complete only when its manifest exists and names them. Outputs are
produced in a private staging folder; commit removes the old manifest, moves the outputs in
and writes the new manifest atomically. A crash at any point leaves either no manifest (the
step reruns) or the previous complete set.

Two runs of one spec may run the same step at once. A staging folder is named after its
writer (`.{step}.staging-<host>-<pid>-<random>`), and only a writer known to be gone (this
host, no such process) or a folder of another host untouched for a day is cleaned up. Commits
of one step hold its lock (`.{step}.lock`, exclusive) and manifest reads share it, so a reader
never sees the moment between the old manifest going and the new one arriving.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from loopline.integrations.filesystems import filesystem, is_object_store
from loopline.runtime.hashing import path_md5
from loopline.runtime.processes import alive
from loopline.spec.paths import project_path

MANIFEST = "_loopline.json"
# A staging folder of another host whose process cannot be checked from here: gone when
# nothing in it has changed for this long.
FOREIGN_STAGING_TTL_S = 24 * 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "unknown"


def _staging_prefix(step: str) -> str:
    return f".{step}.staging-{_host()}-{os.getpid()}-"



def _newest_change(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, path.lstat().st_mtime)
    return newest


def staging_is_stale(folder: Path, step: str, now: float | None = None) -> bool:
    """Whether nobody can still be writing `folder`: its process (on this host) is gone, or,
    for another host's folder (or one named before writers were recorded), nothing in it
    changed for FOREIGN_STAGING_TTL_S."""
    owner = folder.name.removeprefix(f".{step}.staging-")
    parts = owner.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[0] == _host():
        return not alive(int(parts[1]))
    try:
        return (now or time.time()) - _newest_change(folder) > FOREIGN_STAGING_TTL_S
    except OSError:  # removed meanwhile
        return False


@contextlib.contextmanager
def step_lock(parent: Path, step: str, shared: bool = False) -> Iterator[None]:
    """The step's lock file beside its folder: exclusive for a commit, shared for reading the
    manifest. Held for moments (renames), so it simply waits."""
    import fcntl

    with open(parent / f".{step}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ArtifactStore:
    """Local folder store; `FsspecStore` extends it to any fsspec URI."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def step_dir(self, pipeline: str, step: str) -> Path:
        return self.root / pipeline / step

    def uri(self, pipeline: str, step: str, filename: str) -> str:
        return str(self.step_dir(pipeline, step) / filename)

    def read_manifest(self, pipeline: str, step: str) -> dict[str, Any] | None:
        folder = self.step_dir(pipeline, step)
        if not folder.parent.is_dir():
            return None  # never ran (and a look must not create the pipeline's folder)
        try:
            with step_lock(folder.parent, step, shared=True):
                return json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def local_path(self, pipeline: str, step: str, filename: str, digest: str = "") -> Path:
        return self.step_dir(pipeline, step) / filename

    def output(self, pipeline: str, step: str, name: str) -> Path | None:
        """A named output of the step's last complete run, as a local path (downloaded once
        from an object store); None when the step has not committed one."""
        entry = ((self.read_manifest(pipeline, step) or {}).get("outputs") or {}).get(name)
        if entry is None:
            return None
        return self.local_path(pipeline, step, entry["path"], entry.get("hash") or "")

    def outputs_intact(self, pipeline: str, step: str, manifest: dict[str, Any]) -> bool:
        for entry in manifest.get("outputs", {}).values():
            path = self.step_dir(pipeline, step) / entry["path"]
            if not path.exists():
                return False
            if path.is_file() and path.stat().st_size != entry.get("size", -1):
                return False
        return True

    def staging(self, pipeline: str, step: str) -> Path:
        """A fresh staging folder named after this writer; folders of writers that are gone
        are removed, those of live runs (this spec run twice at once) are left alone."""
        parent = self.step_dir(pipeline, step).parent
        parent.mkdir(parents=True, exist_ok=True)
        for other in parent.glob(f".{step}.staging-*"):
            if staging_is_stale(other, step):
                shutil.rmtree(other, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=_staging_prefix(step), dir=parent))

    def commit(self, pipeline: str, step: str, staging: Path, manifest: dict[str, Any]) -> None:
        target = self.step_dir(pipeline, step)
        target.mkdir(parents=True, exist_ok=True)
        with step_lock(target.parent, step):  # one commit of this step at a time
            (target / MANIFEST).unlink(missing_ok=True)  # from here on, nothing is complete
            for entry in manifest["outputs"].values():
                source, destination = staging / entry["path"], target / entry["path"]
                if destination.is_dir():  # aside, then in: no moment without the folder
                    os.replace(destination, staging / f".replaced-{entry['path']}")
                os.replace(source, destination)
            write_atomic(target / MANIFEST, json.dumps(manifest, indent=2, default=str))
        shutil.rmtree(staging, ignore_errors=True)

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def invalidate(self, pipeline: str, step: str) -> None:
        """The step's outputs stop counting as complete (its manifest goes)."""
        folder = self.step_dir(pipeline, step)
        if folder.parent.is_dir():
            with step_lock(folder.parent, step):
                (folder / MANIFEST).unlink(missing_ok=True)

    def adopt(self, pipeline: str, step: str, files: Mapping[str, tuple[Path, str, str | None]],
              data_hashes: Mapping[str, str]) -> None:
        """Record files produced elsewhere (a KFP task's input artifacts) as a step's complete
        outputs: `files` maps output -> (where it is, its file name, its hash if known).
        Linked, not copied; the manifest is written last, as by `commit`."""
        folder = self.step_dir(pipeline, step)
        folder.mkdir(parents=True, exist_ok=True)
        outputs = {}
        for name, (source, filename, digest) in files.items():
            target = folder / filename
            if not target.exists():
                os.symlink(source, target)
            outputs[name] = {"path": filename, "hash": digest or path_md5(target),
                             "size": target.stat().st_size if target.is_file() else None}
        write_atomic(folder / MANIFEST, json.dumps({"outputs": outputs,
                                                    "data_hashes": dict(data_hashes)}))


class FsspecStore(ArtifactStore):
    """Any fsspec URI (s3://, gs://, memory://): uploads outputs, then the manifest last."""

    def __init__(self, uri: str, cache_dir: Path) -> None:

        self.fs, self.base = filesystem(uri)
        self.protocol = uri.split("://", 1)[0]
        super().__init__(cache_dir)

    def _remote(self, pipeline: str, step: str, filename: str = "") -> str:
        return "/".join(p for p in (self.base.rstrip("/"), pipeline, step, filename) if p)

    def uri(self, pipeline: str, step: str, filename: str) -> str:
        return f"{self.protocol}://{self._remote(pipeline, step, filename).lstrip('/')}"

    def read_manifest(self, pipeline: str, step: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(self._remote(pipeline, step, MANIFEST)))
        except (OSError, ValueError, FileNotFoundError):
            return None

    def outputs_intact(self, pipeline: str, step: str, manifest: dict[str, Any]) -> bool:
        return all(self.fs.exists(self._remote(pipeline, step, e["path"]))
                   for e in manifest.get("outputs", {}).values())

    def local_path(self, pipeline: str, step: str, filename: str, digest: str = "") -> Path:
        """Download once into the local cache, keyed by the output's content hash (which the
        caller has from the manifest it just read)."""
        local = self.root / pipeline / step / (digest or "unknown") / filename
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".part")
            self.fs.get(self._remote(pipeline, step, filename), str(tmp), recursive=True)
            os.replace(tmp, local)
        return local

    def invalidate(self, pipeline: str, step: str) -> None:
        manifest = self._remote(pipeline, step, MANIFEST)
        if self.fs.exists(manifest):
            self.fs.rm(manifest)

    def staging(self, pipeline: str, step: str) -> Path:
        (self.root / pipeline).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=_staging_prefix(step), dir=self.root / pipeline))

    def commit(self, pipeline: str, step: str, staging: Path, manifest: dict[str, Any]) -> None:
        manifest_path = self._remote(pipeline, step, MANIFEST)
        if self.fs.exists(manifest_path):
            self.fs.rm(manifest_path)
        for entry in manifest["outputs"].values():
            source, remote = staging / entry["path"], self._remote(pipeline, step, entry["path"])
            if source.is_dir() and self.fs.exists(remote):  # `put` would nest it inside
                self.fs.rm(remote, recursive=True)
            self.fs.put(str(source), remote, recursive=source.is_dir())
        self.fs.pipe_file(manifest_path, json.dumps(manifest, default=str).encode())
        shutil.rmtree(staging, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def open_store(root: str, project_root: Path) -> ArtifactStore:
    if is_object_store(root):
        return FsspecStore(root, project_root / ".loopline" / "cache")
    return ArtifactStore(project_path(root.removeprefix("file://"), project_root))
