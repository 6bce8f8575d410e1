"""The production profile's services, real and on loopback: an S3 stand-in (moto), an
`mlflow server` on PostgreSQL with its artifacts in that bucket, a Feast SQL registry on
PostgreSQL and the Redis online store. No cloud and no cluster here: the bucket is moto."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.s3 import CREDENTIALS, S3Server, moto_server
from tests.support.services import mlflow_server, postgres_database, postgres_url


@dataclass(frozen=True)
class Stack:
    s3: S3Server
    mlflow: str
    # What the Kubernetes secrets the example specs name hold: (secret, key) -> value.
    secrets: dict[tuple[str, str], str]

    def overlay(self, artifacts: str) -> str:
        """params.production.yaml pointing at these services, artifacts under `artifacts`."""
        return ("platform:\n"
                f"  artifacts: {self.s3.url(artifacts)}\n"
                f"  mlflow: {self.mlflow}\n"
                "  feature_store: feature_store.production.yaml\n"
                f"  s3_endpoint: {self.s3.endpoint}\n")

    def exported(self) -> dict[str, str]:
        """The secrets as a worker or a local shell exports them (variable -> value)."""
        names = {("loopline-s3", "access-key-id"): "AWS_ACCESS_KEY_ID",
                 ("loopline-s3", "secret-access-key"): "AWS_SECRET_ACCESS_KEY",
                 ("loopline-feast", "registry-url"): "LOOPLINE_FEAST_REGISTRY_URL",
                 ("loopline-feast", "redis"): "LOOPLINE_FEAST_REDIS",
                 ("loopline-mlflow", "lock-url"): "LOOPLINE_LOCK_URL",
                 ("loopline-alerts", "slack-webhook"): "LOOPLINE_SLACK_WEBHOOK",
                 ("loopline-alerts", "pagerduty-routing-key"): "LOOPLINE_PAGERDUTY_KEY"}
        return {names[ref]: value for ref, value in self.secrets.items()}


@contextlib.contextmanager
def production_stack(tmp: Path, redis_db: int,
                     secret_access_key: str = "testing") -> Iterator[Stack]:
    """Every service of params.production.yaml; `secret_access_key` lets a test plant a
    value it then looks for everywhere (moto accepts any)."""
    with moto_server() as s3, postgres_database("feast") as feast_db:
        server_env = {**s3.env, "AWS_SECRET_ACCESS_KEY": secret_access_key}
        with mlflow_server(tmp / "mlflow-server.log", s3.url("mlflow"), server_env) as mlflow:
            secrets = {
                ("loopline-s3", "access-key-id"): CREDENTIALS["AWS_ACCESS_KEY_ID"],
                ("loopline-s3", "secret-access-key"): secret_access_key,
                ("loopline-feast", "registry-url"): postgres_url(feast_db),
                ("loopline-feast", "redis"): f"127.0.0.1:6379,db={redis_db}",
                ("loopline-mlflow", "lock-url"): postgres_url(feast_db),
                # No loopline-alerts secret: its refs are optional, so pods start without it
                # (as on a cluster where nobody set up alerting yet).
            }
            yield Stack(s3, mlflow, secrets)
