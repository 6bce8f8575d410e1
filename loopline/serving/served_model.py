"""One registered model version ready to answer: the model, its schema and its features.

Loaded whole before it serves a single request (model, transform, online store, one warm-up
prediction), so a swap never exposes a half-loaded version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.integrations.model_versions import ModelVersion, resolve
from loopline.serving.online_features import OnlineFeatures, open_online
from loopline.serving.schema import InputSchema, schema_for


@dataclass(frozen=True)
class ServedModel:
    version: ModelVersion
    model: Any
    schema: InputSchema
    features: OnlineFeatures | None
    task: str

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> str:
        return self.version.version

    def predict(self, frame: Any) -> Any:
        """Scores as `predict.batch` computes them: positive-class probability or value."""
        from loopline.ml.metrics import predict_scores

        return predict_scores(self.model, frame, self.task)


@dataclass(frozen=True)
class Source:
    """Where served versions come from: the spec's registry and Feast repo."""

    tracking_uri: str
    registry_uri: str
    name: str
    project_root: Path
    feature_store: str
    feature_cache_s: float
    # One OnlineFeatures per Feast service: versions that read the same features (a rollout's
    # two) share its store connection and its cache, and a batch of both is one lookup.
    _online: dict[str, OnlineFeatures | None] = field(default_factory=dict, compare=False,
                                                      repr=False)

    def version_of(self, ref: str) -> str:
        """The version an alias points at now: one query on a SQLite registry, asked every
        few seconds by every server process, so it must cost next to nothing."""
        from loopline.integrations.registry_peek import alias_version

        return ref if ref.isdigit() else alias_version(self.registry_uri, self.name, ref)

    def load(self, ref: str) -> ServedModel:
        version = resolve(self.tracking_uri, self.registry_uri, self.name, ref)
        model = version.load()
        recipe = json.dumps(version.feast, sort_keys=True, default=str)
        if recipe not in self._online:
            self._online[recipe] = open_online(self.project_root, version.feast,
                                               self.feature_store, self.feature_cache_s)
        features = self._online[recipe]
        schema = schema_for(model, version.info, version.feast,
                            features.keys if features else ())
        return ServedModel(version, model, schema, features,
                           str(version.info.get("task") or "classification"))
