"""Where scored batches are kept for drift jobs: `<folder>/<model name>/<batch>.parquet`.

The scoring and drift pipelines find the same folder from the model name and a shared default,
so neither types the other's paths. A batch is written to a temporary name and renamed, so a
crash never leaves a half-written batch that a drift job would read as complete.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_FOLDER = "monitoring"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def batch_folder(project_root: Path, folder: str, model_name: str) -> Path:
    base = Path(folder)
    return (base if base.is_absolute() else project_root / base) / model_name


def publish(frame: pd.DataFrame, folder: Path, batch: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_SAFE.sub('_', batch)}.parquet"
    staging = folder / f".{target.name}.{os.getpid()}.tmp"
    frame.to_parquet(staging, index=False)
    os.replace(staging, target)
    return target


def latest(folder: Path, window: int) -> list[Path]:
    """The `window` most recently scored batches, oldest first."""
    if not folder.is_dir():
        return []
    batches = sorted(folder.glob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return batches[-window:]
