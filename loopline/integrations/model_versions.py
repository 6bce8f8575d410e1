"""A registered model version and what it was trained on, read from its model card.

Scoring, drift and the gate need the champion: its model, its Feast join, its training rows
and its evaluation. All travel with the model version (tags written by `registry.promote`),
so no spec types a training path twice. `resolve` is the one way to find a version by alias.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.components.contract import StepContext, StepFailed
from loopline.integrations import mlflow_registry as reg
from loopline.integrations.mlflow_tags import REFERENCE
from loopline.integrations.model_card import ModelCard

if TYPE_CHECKING:
    import pandas as pd


class NoChampion(StepFailed):
    """The registry has no version behind the alias yet: nothing to score or compare with."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    card: ModelCard
    tracking_uri: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def info(self) -> dict[str, Any]:
        """task, label, raw inputs and flavour of the model."""
        return dict(self.card.info)

    @property
    def feast(self) -> dict[str, Any]:
        """The Feast join it was trained with (service, repo, timestamp column), or {}."""
        return dict(self.card.feast)

    @property
    def eval_metrics(self) -> dict[str, float]:
        return dict(self.card.metrics)

    @property
    def primary_metric(self) -> str | None:
        return self.card.primary_metric

    def load(self) -> Any:
        return reg.load_model(self.tracking_uri, self.uri)

    def reference(self, download_to: Path) -> pd.DataFrame:
        """The rows this version was trained on, logged with it by `registry.promote`."""
        import mlflow
        import pandas as pd

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if not self.card.reference:
            raise StepFailed(f"{self.name} v{self.version} carries no training reference "
                             f"(tag {REFERENCE}); wire `reference:` into the promote "
                             "step of its training pipeline and retrain")
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=self.card.reference, dst_path=str(download_to),
            tracking_uri=self.tracking_uri)
        return pd.read_parquet(path)


def resolve(tracking_uri: str, registry_uri: str, name: str, ref: str) -> ModelVersion:
    """`ref` is an alias (champion) or a version number; NoChampion says what to do."""
    from mlflow.exceptions import MlflowException

    client = reg.client(tracking_uri, registry_uri)
    try:
        version = ref if ref.isdigit() else reg.version_for_alias(client, name, ref)
        model_version = client.get_model_version(name, version) if version else None
    except MlflowException:
        model_version = None
    if model_version is None:
        raise NoChampion(f"{name} has no {ref!r} yet: train and promote one first "
                         "(loopline run pipelines/<training spec>.yaml)")
    return ModelVersion(name, str(model_version.version),
                        ModelCard.from_tags(model_version.tags or {}), tracking_uri)


def resolve_for_step(ctx: StepContext, ref: str) -> ModelVersion:
    """The version behind `ref` in the step's own registry (registry.model_name)."""
    if not ctx.model_name:
        raise StepFailed("registry.model_name is not set in the spec")
    return resolve(ctx.tracking_uri, ctx.registry_uri, ctx.model_name, ref)
