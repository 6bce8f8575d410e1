"""`predict.batch`: score rows with the champion, joined to features the way it was trained.

The model version's lineage says which Feast service and timestamp column its training rows
were joined with; scoring joins the same, so training and serving features cannot diverge.
Predictions carry the model version that made them, and the scored rows are kept as the
"current" window that drift jobs compare with the champion's training rows.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from loopline.components import monitoring
from loopline.components.champion import ModelVersion, resolve
from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepFailed,
    StepResult,
)

PREDICTION = "prediction"
MODEL_VERSION = "model_version"


class PredictParams(ComponentParams):
    model: str = Field("champion", description="Registry alias or version number to score with.")
    batch: str | None = Field(None, description="Name of the kept batch; default: the run id.")
    keep_for_drift: bool = Field(True, description="Keep scored rows as drift's current data.")
    monitoring: str | None = Field(
        None, description="Folder or URI for kept batches (one subfolder per model); "
                          "default: monitoring/ under the artifact root.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Classification decision threshold.")


def join_features(ctx: StepContext, champion: ModelVersion, frame: Any) -> Any:
    """Join the champion's Feast service point-in-time, as its training rows were."""
    recipe = champion.feast
    if not recipe:
        return frame
    from loopline.components.feast_repo import open_store
    from loopline.components.features_feast import historical_features

    store = open_store(ctx.project_root / recipe.get("repo", "feature_repo"))
    joined, names = historical_features(store, recipe["service"], frame,
                                        recipe["timestamp_column"],
                                        bool(recipe.get("assume_utc", False)))
    ctx.log(f"joined {len(names)} features from Feast service {recipe['service']!r}")
    return joined


def score(champion: ModelVersion, model: Any, frame: Any) -> Any:
    """The model's scores: positive-class probability for classifiers, the value otherwise."""
    from loopline.components.metrics import predict_scores

    if missing := [c for c in champion.info.get("inputs") or [] if c not in frame.columns]:
        raise StepFailed(f"rows to score lack column(s) {', '.join(missing)} that "
                         f"{champion.name} v{champion.version} reads")
    scores = predict_scores(model, frame, champion.info.get("task", "classification"))
    if scores.ndim != 1:
        raise StepFailed("predict.batch scores binary classifiers and regressors; "
                         f"{champion.name} v{champion.version} has {scores.shape[1]} classes")
    return scores


def run(ctx: StepContext, params: PredictParams) -> StepResult:
    import pandas as pd

    champion = resolve(ctx, params.model)
    rows = pd.read_parquet(ctx.input_path("data"))
    if rows.empty:
        ctx.log("WARNING: no rows to score; nothing kept for drift")
        scored = rows.assign(**{PREDICTION: pd.Series(dtype=float)})
    else:
        scored = join_features(ctx, champion, rows)
        scored[PREDICTION] = score(champion, champion.load(), scored)
    scored[MODEL_VERSION] = champion.version
    scored.to_parquet(ctx.output_path("predictions"), index=False)

    summary: dict[str, Any] = {"model": champion.name, "version": champion.version,
                               "rows": len(scored)}
    if len(scored):
        summary["mean_prediction"] = float(scored[PREDICTION].mean())
        if champion.info.get("task") == "classification":
            summary["positive_share"] = float((scored[PREDICTION] >= params.threshold).mean())
    if params.keep_for_drift and len(scored):
        folder = monitoring.batch_folder(ctx.artifacts_root, ctx.project_root,
                                         params.monitoring, champion.name)
        summary["kept_as"] = monitoring.publish(scored, folder, params.batch or ctx.run_id)
    ctx.output_path("summary").write_text(json.dumps(summary, indent=2))
    ctx.log(f"scored {len(scored):,} rows with {champion.name} v{champion.version}")
    metrics = {k: v for k, v in summary.items() if k in ("rows", "mean_prediction",
                                                          "positive_share")}
    return StepResult(metrics=metrics, facts={"scored_with": summary})


COMPONENT = Component(
    name="predict.batch",
    version="1",
    description="Score rows with the champion (same Feast join), keep them for drift.",
    params=PredictParams,
    run=run,
    inputs={"data": Input("Rows to score (entity keys, timestamps, raw columns).")},
    outputs={
        "predictions": Output("predictions.parquet", "dataset",
                              "The rows, their features, prediction and model_version."),
        "summary": Output("summary.json", "json", "Model version, rows, mean prediction."),
    },
    reads_registry=True,
    cacheable=False,
)
