"""A real S3 endpoint for tests: moto's server (`moto[server]`, a dev extra) in a subprocess.

It stands in for a cloud bucket (AWS S3; GCS and Azure go through the same fsspec code),
which cannot run here: no test reaches the internet or holds cloud credentials. The server
speaks the S3 HTTP API, so s3fs, boto3 and MLflow's artifact client talk to it as they would
to AWS once pointed at it by `s3_env` (the endpoint plus dummy credentials).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "loopline-tests"  # S3 wants 3-63 characters: lower-case letters, digits, - and .


def s3_env(endpoint: str) -> dict[str, str]:
    """What points s3fs/boto3 (AWS_ENDPOINT_URL) and MLflow (MLFLOW_S3_ENDPOINT_URL) at it."""
    return {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint, **CREDENTIALS}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    started_s: float  # from launch to the first answer
    env: dict[str, str] = field(default_factory=dict)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 client on the server, independent of the code under test."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1) as response:
            return response.status == 200  # ListBuckets
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def moto_server(bucket: str = BUCKET, timeout_s: float = 60.0) -> Iterator[S3Server]:
    """`moto_server -H 127.0.0.1 -p <free port>` with `bucket` created, stopped afterwards.
    It answers in about 3 s on an idle machine; `timeout_s` allows for a busy one."""
    if len(bucket) < 3:
        raise ValueError(f"S3 bucket names have 3 or more characters: {bucket!r}")
    with tempfile.TemporaryFile("w+") as log:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            while not _answers(endpoint):
                if process.poll() is not None or time.perf_counter() - started > timeout_s:
                    log.seek(0)
                    raise RuntimeError(f"moto_server on port {port} did not answer "
                                       f"(exit {process.poll()}):\n{log.read()[-2000:]}")
                time.sleep(0.1)
            server = S3Server(endpoint, bucket, round(time.perf_counter() - started, 2),
                              s3_env(endpoint))
            server.client().create_bucket(Bucket=bucket)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
