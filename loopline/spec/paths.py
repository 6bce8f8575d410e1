"""Relative paths in a spec mean "under the project root" — never the process's working folder,
so Airflow workers, KFP pods and DVC find the same files."""

from __future__ import annotations

from pathlib import Path


def project_path(value: str | Path, project_root: Path) -> Path:
    """`value` if absolute, else `project_root / value`."""
    path = Path(value)
    return path if path.is_absolute() else project_root / path


def is_uri(value: str) -> bool:
    """An fsspec URI (s3://, gs://, memory://, file://) rather than a plain path."""
    return "://" in value


def location(value: str, project_root: Path) -> str:
    """A folder or URI setting (artifact root, batch folder) as an absolute path or a URI."""
    return value if is_uri(value) else str(project_path(value, project_root))


def find_project_root(start: Path) -> Path:
    """The project a spec file or a working folder belongs to: the folder holding `pipelines/`.

    A spec counts only when it lies inside that `pipelines/`; a folder is its own project
    root or inside one. Without such a folder: the spec's folder, or the folder itself.
    """
    start = start.resolve()
    if start.is_dir():
        return next((p for p in (start, *start.parents) if (p / "pipelines").is_dir()), start)
    for parent in start.parents:
        if (parent / "pipelines").is_dir() and start.is_relative_to(parent / "pipelines"):
            return parent
    return start.parent


def sqlite_file(uri: str) -> Path | None:
    """The database file behind a `sqlite:///` URI; None for any other store (one rule for
    the tracking lock, the registry lock, the alias peek and `loopline models`)."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
