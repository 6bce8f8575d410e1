"""One way to reach an object store (s3://, gs://, az://, memory://) through fsspec."""

from __future__ import annotations

from typing import Any


def filesystem(uri: str) -> tuple[Any, str]:
    """fsspec's filesystem and the path in it for `uri`, with a client of its own: fsspec
    caches clients by their arguments, not by the environment, so a client made under one
    run's AWS_ENDPOINT_URL and credentials would otherwise serve the next run in this
    process (an Airflow worker, a test session)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
    return fs, path
