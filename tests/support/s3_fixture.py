"""Pytest fixtures on the local S3 stand-in (tests/support/s3.py), registered by
tests/conftest.py with `pytest_plugins = ["tests.support.s3_fixture"]`.

`s3_server`: one moto server for the whole session (it starts in seconds; tests keep apart
by key prefix). `s3`: the same server, with this test's environment pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.s3 import S3Server, moto_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    pytest.importorskip("moto", reason="moto[server] (the dev extra) is not installed")
    pytest.importorskip("s3fs", reason="s3fs (loopline[s3]) is not installed")
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The session's server, with AWS_ENDPOINT_URL, MLFLOW_S3_ENDPOINT_URL and dummy
    credentials set for this test (and the subprocesses it starts)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server
