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

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepFailed,
    StepResult,
)
from loopline.integrations import scored_batches as monitoring
from loopline.integrations.model_versions import ModelVersion, resolve_for_step
from loopline.integrations.scored_batches import MODEL_VERSION, PREDICTION


class PredictParams(ComponentParams):
    model: str = Field("champion", description="Registry alias or version number to score with.")
    batch: str | None = Field(None, description="Name of the kept batch; default: the run id.")
    keep_for_drift: bool = Field(True, description="Keep scored rows as drift's current data.")
    monitoring: str | None = Field(
        None, description="Folder or URI for kept batches (one subfolder per model); "
                          "default: monitoring/ under the artifact root.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Classification decision threshold.")


def score(champion: ModelVersion, model: Any, frame: Any) -> Any:
    """The model's scores: positive-class probability for classifiers, the value otherwise."""
    from loopline.ml.metrics import predict_scores

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

    champion = resolve_for_step(ctx, params.model)
    rows = pd.read_parquet(ctx.input_path("data"))
    if rows.empty:
        ctx.log("WARNING: no rows to score; nothing kept for drift")
        scored = rows.assign(**{PREDICTION: pd.Series(dtype=float)})
    else:
        from loopline.integrations.feast import join_like_training

        scored, names = join_like_training(ctx.project_root, champion.feast, rows)
        if names:
            ctx.log(f"joined {len(names)} features from Feast service "
                    f"{champion.feast['service']!r}")
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
