"""Where scored batches are kept for drift jobs: `<folder>/<model name>/<batch>.parquet`.

The folder defaults to `monitoring/` under the spec's artifact root, so scoring and drift
pipelines find each other from the model name alone — and where the artifact root is an
object store (s3://…), so are the batches, which is what separate pods (Airflow on
Kubernetes, Kubeflow) need. A batch is written whole before it appears: a local file is
renamed into place, an object is uploaded in one put. A drift job never reads half a batch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.integrations.filesystems import filesystem, write_whole
from loopline.spec.paths import location

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_FOLDER = "monitoring"
# Columns `predict.batch` adds to every scored row; drift reads them back.
PREDICTION = "prediction"
MODEL_VERSION = "model_version"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# What fsspec file systems call a modification time (local, memory, S3, GCS, Azure).
_TIME_KEYS = ("mtime", "LastModified", "updated", "last_modified", "created")


def batch_folder(artifacts_root: str, project_root: Path, folder: str | None,
                 model_name: str) -> str:
    """`folder` (project-relative, absolute or a URI), else `<artifact root>/monitoring`."""
    if folder is None:
        base = f"{artifacts_root.rstrip('/')}/{DEFAULT_FOLDER}"
    else:
        base = location(folder, project_root).rstrip("/")
    return f"{base}/{model_name}"


def publish(frame: pd.DataFrame, folder: str, batch: str) -> str:

    fs, path = filesystem(folder)
    fs.makedirs(path, exist_ok=True)
    name = f"{_SAFE.sub('_', batch)}.parquet"
    return write_whole(folder, name, lambda path: frame.to_parquet(path, index=False))


def _modified(info: dict[str, Any]) -> float:
    for key in _TIME_KEYS:
        value = info.get(key)
        if value is not None:
            return value.timestamp() if hasattr(value, "timestamp") else float(value)
    return 0.0


def latest(folder: str, window: int) -> list[str]:
    """The `window` most recently scored batches, oldest first."""

    fs, path = filesystem(folder)
    if not fs.isdir(path):
        return []
    batches = [info for info in fs.ls(path, detail=True)
               if info["name"].endswith(".parquet") and not
               info["name"].rsplit("/", 1)[-1].startswith(".")]
    batches.sort(key=lambda info: (_modified(info), info["name"]))
    return [f"{folder}/{info['name'].rsplit('/', 1)[-1]}" for info in batches[-window:]]


class UnreadableBatch(ValueError):
    """A file in the batch folder that is not a readable Parquet table."""


def read_batches(paths: list[str]) -> pd.DataFrame:
    """The batches as one frame; a file that is not Parquet is named, not a pyarrow trace."""
    import pandas as pd

    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            reason = str(exc).splitlines()[0][:160]
            raise UnreadableBatch(f"scored batch {path} is not a readable Parquet file "
                                  f"({reason}); move it out of the batch folder") from exc
    return pd.concat(frames, ignore_index=True)
