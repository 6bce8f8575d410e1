"""`evaluate.gate`: score the challenger and the champion on the same rows; decide honestly."""

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
from loopline.ml.gate import GateCheck, evaluate_checks


class EvaluateParams(ComponentParams):
    gates: list[GateCheck] = Field(default_factory=list)
    primary_metric: str | None = Field(None, description="Default: roc_auc or rmse.")
    require_data_quality: bool = Field(True, description="Fail the gate if validation failed.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Decision threshold for accuracy/f1.")
    latency_rows: int = Field(200, ge=10, description="Single-row calls timed per model.")
    compare_with: str = Field("champion", description="Registry alias to compare against.")
    min_compare_rows: int = Field(
        500, ge=1, description="Eval rows the champion was not trained on needed to compare "
                               "with it; fewer, and the relative checks are refused.")


def _champion(ctx: StepContext, alias: str) -> tuple[Any, Any, str]:
    """(model version, model, note); the model is None when there is none to compare with."""
    if not ctx.model_name:
        return None, None, "no registry configured, so no champion to compare with"
    from loopline.integrations.model_versions import resolve_for_step

    try:
        champion = resolve_for_step(ctx, alias)
    except Exception:  # noqa: BLE001 - registry not created yet is "no champion"
        return None, None, f"no {alias} yet for {ctx.model_name}"
    try:
        model = champion.load()
    except Exception as exc:  # noqa: BLE001
        return champion, None, (f"{alias} v{champion.version} could not be loaded "
                                f"({exc}); not compared")
    return champion, model, f"{alias} is v{champion.version}"


def _unseen_by(champion: Any, frame: Any, alias: str) -> tuple[Any, dict[str, Any]]:
    """Eval rows the champion was not trained on (from its training reference), and what the
    verdict says about them. A champion scored on its own training rows looks better than it
    is, so those rows never enter the comparison."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from loopline.ml.row_overlap import seen_rows

    if not champion.card.reference:
        return np.ones(len(frame), dtype=bool), {
            "checked": False, "rows": len(frame),
            "note": f"{alias} v{champion.version} carries no training reference: overlap "
                    "with its training rows could not be checked"}
    with tempfile.TemporaryDirectory() as scratch:
        reference = champion.reference(Path(scratch))
    unseen = ~seen_rows(frame, reference)
    return unseen, {"checked": True, "rows": int(unseen.sum()),
                    "excluded": int((~unseen).sum()),
                    "note": f"{int((~unseen).sum()):,} of {len(frame):,} eval rows are in "
                            f"{alias} v{champion.version}'s training data and were left out"}


def _metrics_named(params: EvaluateParams) -> list[tuple[tuple[str | int, ...], str]]:
    named: list[tuple[tuple[str | int, ...], str]] = [
        (("gates", i, "metric"), gate.metric) for i, gate in enumerate(params.gates)]
    if params.primary_metric:
        named.append((("primary_metric",), params.primary_metric))
    return named


def run(ctx: StepContext, params: EvaluateParams) -> StepResult:
    import joblib
    import numpy as np
    import pandas as pd

    from loopline.ml import metrics as m
    from loopline.ml import plots
    from loopline.ml.row_overlap import time_window

    info = json.loads(ctx.input_path("info").read_text())
    task, label = info["task"], info["label"]
    model = joblib.load(ctx.input_path("model"))
    frame = pd.read_parquet(ctx.input_path("eval"))
    if frame.empty:
        raise StepFailed("the eval split is empty")
    if label not in frame.columns:
        raise StepFailed(f"eval data has no label column {label!r}")
    actual = frame[label].to_numpy()
    rows = frame.drop(columns=[label])
    scores = m.predict_scores(model, rows, task)
    values = m.quality(task, actual, scores, info["classes"], params.threshold)

    version, champion, note = _champion(ctx, params.compare_with)
    champion_version = version.version if version is not None else None
    champion_values: dict[str, float] | None = None
    champion_scores = compared = refused = None
    compared_on: dict[str, Any] | None = None
    if champion is not None:
        unseen, compared_on = _unseen_by(version, frame, params.compare_with)
        try:
            if compared_on["rows"] < params.min_compare_rows:
                refused = (f"{compared_on['note']}; {compared_on['rows']:,} unseen rows remain "
                           f"(< min_compare_rows {params.min_compare_rows}), too few to compare "
                           "fairly; judge on a later eval window")
                champion_values = {}
            else:
                champion_scores = m.predict_scores(champion, rows, task)
                champion_values = m.quality(task, actual[unseen], champion_scores[unseen],
                                            info["classes"], params.threshold)
                if compared_on.get("excluded"):
                    compared = m.quality(task, actual[unseen], scores[unseen], info["classes"],
                                         params.threshold)
                    note = f"{note}; compared on {compared_on['rows']:,} rows it never saw"
        except Exception as exc:  # noqa: BLE001 - a champion that cannot score these rows
            note = f"champion v{champion_version} could not score the eval split ({exc})"
            champion, champion_scores, champion_values = None, None, None
    timed = m.latency({"challenger": model, **({"champion": champion} if champion else {})},
                      rows, task, single_rows=params.latency_rows)
    values.update(timed["challenger"])
    if champion_values is not None:
        champion_values.update(timed["champion"])

    checks = evaluate_checks(params.gates, values, champion_values, note, m.HIGHER_IS_BETTER,
                             compared=compared, refused=refused)
    if params.require_data_quality and (path := ctx.input_path("validation")) is not None:
        valid = bool(json.loads(path.read_text())["success"])
        checks.append({"metric": "data_quality", "check": "passed", "value": float(valid),
                       "threshold": 1.0, "passed": valid,
                       "detail": "data validation " + ("passed" if valid else "failed")})
    primary = params.primary_metric or ("rmse" if task == "regression" else "roc_auc")
    verdict = {"passed": all(c["passed"] for c in checks), "checks": checks,
               "metrics": values, "primary_metric": primary,
               "champion": ({"version": champion_version, "metrics": champion_values,
                             "compared_on": compared_on, "challenger_metrics": compared}
                            if champion_values is not None else None),
               "champion_note": note, "rows": len(frame),
               # What promote checks under the registry lock: still the same champion?
               "judged_against": {"alias": params.compare_with,
                                  "version": str(champion_version) if champion_version
                                  is not None else None},
               "judged_on": {"rows": len(frame), **(time_window(frame) or {})}}
    ctx.output_path("verdict").write_text(json.dumps(verdict, indent=2, default=str))
    ctx.output_path("metrics").write_text(json.dumps(values, indent=2))
    plot_dir = ctx.output_path("plots")
    if task == "regression":
        plots.regression_plots(plot_dir, actual, scores)
    elif np.ndim(scores) == 1:
        positive = info["classes"][1]
        # The champion's curve only where it was scored on rows it never saw.
        fair = champion_scores if not (compared_on or {}).get("excluded") else None
        plots.classification_plots(plot_dir, (actual == positive).astype(int), scores,
                                   params.threshold, fair)
    else:
        plot_dir.mkdir(parents=True, exist_ok=True)
    failed = [c["detail"] for c in checks if not c["passed"]]
    ctx.log(f"{primary} {values.get(primary, float('nan')):.4f}; " + (
        "gate passed" if verdict["passed"] else "gate FAILED: " + "; ".join(failed)))
    ctx.log_metrics(values)
    gate = {"passed": verdict["passed"],
            "checks": [{k: c.get(k) for k in ("metric", "check", "value", "threshold", "passed",
                                              "detail")} for c in checks]}
    return StepResult(metrics=values, facts={"gate": gate,
                                             "compared_with": champion_version or ""})


COMPONENT = Component(
    name="evaluate.gate",
    version="1",
    description="Metrics and latency vs the champion on the eval split; write a verdict.",
    params=EvaluateParams,
    run=run,
    metrics=_metrics_named,
    inputs={
        "model": Input("The challenger bundle."),
        "info": Input("Task/label/classes of the model."),
        "eval": Input("Raw eval rows with the label."),
        "validation": Input("Validation summary for the data-quality gate.", optional=True),
    },
    outputs={
        "verdict": Output("verdict.json", "json", "Every check, value, threshold, pass/fail."),
        "metrics": Output("metrics.json", "metrics", "Challenger metrics (DVC metrics)."),
        "plots": Output("plots", "plots", "evaluation.png + roc/pr/confusion JSON."),
    },
    reads_registry=True,
    compares_with_alias=lambda params: params.compare_with,
    plots={"roc.json": {"x": "fpr", "y": "tpr", "title": "ROC", "task": "classification"},
           "pr.json": {"x": "recall", "y": "precision", "title": "Precision-recall",
                       "task": "classification"},
           "predictions.json": {"x": "actual", "y": "predicted", "title": "Predicted vs actual",
                                "task": "regression"}},
)
