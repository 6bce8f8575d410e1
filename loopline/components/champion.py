"""A registered model version and what it was trained on, read from its lineage tags.

Scoring and drift jobs need the champion's Feast join and training rows. Both travel with the
model version (tags written by `registry.promote`), so no spec types a training path twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.components import model_registry as reg
from loopline.components.contract import StepContext, StepFailed

if TYPE_CHECKING:
    import pandas as pd


class NoChampion(StepFailed):
    """The registry has no version behind the alias yet: nothing to score or compare with."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    tags: dict[str, str]
    tracking_uri: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def _json_tag(self, key: str) -> dict[str, Any]:
        value = self.tags.get(key)
        return json.loads(value) if value else {}

    @cached_property
    def info(self) -> dict[str, Any]:
        """task, label, raw inputs and flavour of the model."""
        return self._json_tag(reg.MODEL_INFO_TAG)

    @cached_property
    def feast(self) -> dict[str, Any]:
        """The Feast join it was trained with (service, repo, timestamp column), or {}."""
        return self._json_tag(reg.FEAST_TAG)

    @cached_property
    def eval_metrics(self) -> dict[str, float]:
        return self._json_tag("loopline.metrics")

    @property
    def primary_metric(self) -> str | None:
        value = self.tags.get("loopline.primary_metric", "")
        return value.split("=", 1)[0] or None

    def load(self) -> Any:
        return reg.load_model(self.tracking_uri, self.uri)

    def reference(self, download_to: Path) -> pd.DataFrame:
        """The rows this version was trained on, logged with it by `registry.promote`."""
        import mlflow
        import pandas as pd

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        uri = self.tags.get(reg.REFERENCE_TAG)
        if not uri:
            raise StepFailed(f"{self.name} v{self.version} carries no training reference "
                             f"(tag {reg.REFERENCE_TAG}); wire `reference:` into the promote "
                             "step of its training pipeline and retrain")
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(download_to),
                                                   tracking_uri=self.tracking_uri)
        return pd.read_parquet(path)


def resolve(ctx: StepContext, ref: str) -> ModelVersion:
    """`ref` is an alias (champion) or a version number; NoChampion says what to do."""
    from mlflow.exceptions import MlflowException

    name = ctx.model_name
    if not name:
        raise StepFailed("registry.model_name is not set in the spec")
    client = reg.client(ctx.tracking_uri, ctx.registry_uri)
    try:
        version = ref if ref.isdigit() else reg.version_for_alias(client, name, ref)
        model_version = client.get_model_version(name, version) if version else None
    except MlflowException:
        model_version = None
    if model_version is None:
        raise NoChampion(f"{name} has no {ref!r} yet: train and promote one first "
                         "(loopline run pipelines/<training spec>.yaml)")
    return ModelVersion(name, str(model_version.version), dict(model_version.tags or {}),
                        ctx.tracking_uri)
