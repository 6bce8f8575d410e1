"""`drift.evidently`: is production data still like the champion's training data?

Reference: the champion's own training rows, fetched through its model version's lineage.
Current: the latest batches `predict.batch` kept (or a `current` input), or, with
`current: log`, the last `log_window` of what `loopline serve` answered (its prediction log,
with the labels `loopline feedback` joined). Statistics are
Evidently's formulas computed once per column (drift_stats); Evidently renders the HTML
report from a sample. The JSON summary is the contract of `loopline drift --json`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

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
from loopline.integrations.model_versions import ModelVersion, NoChampion, resolve_for_step
from loopline.integrations.scored_batches import MODEL_VERSION, PREDICTION
from loopline.ml.drift_decision import (
    DEFAULT_THRESHOLDS,
    DriftRules,
    SchemaMismatch,
    Thresholds,
    decide,
    score_columns,
)
from loopline.spec.durations import Duration


class DriftParams(ComponentParams):
    model: str = Field("champion", description="Registry alias or version to compare with.")
    rules: DriftRules = Field(default_factory=DriftRules)
    columns: list[str] | None = Field(
        None, description="Columns to compare; default: the model's inputs except timestamps.")
    monitoring: str | None = Field(
        None, description="Where predict.batch keeps scored batches (same default: "
                          "monitoring/ under the artifact root).")
    window: int = Field(1, ge=1, description="How many of the latest batches form `current`.")
    current: Literal["batches", "log"] = Field(
        "batches", description="Where `current` comes from: the scored batches predict.batch "
                               "kept, or the prediction log of `loopline serve`.")
    log_window: Duration = Field(
        "1d", description="With `current: log`: how far back the log is read (30m, 6h, 1d).")
    min_rows: int = Field(
        1000, ge=1, description="Fewer current rows: warn, decide nothing (PSI over ~100 "
                                "categories is noise below a few thousand rows).")
    prediction: Thresholds | None = Field(
        DEFAULT_THRESHOLDS["psi"], description="PSI limits on the prediction; null: off.")
    metric_max_drop: float | None = Field(
        0.05, ge=0, description="Retrain when labels show the primary metric this far below "
                                "the champion's evaluation; null: off.")
    report_rows: int = Field(20_000, ge=100, description="Rows per side in the HTML report.")


def _check(params: DriftParams, _root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    """ks and wasserstein compare numbers: a categorical column would fail mid-run."""
    from loopline.ml.drift_methods import NUMERIC_ONLY

    method = params.rules.categorical_method
    if method in NUMERIC_ONLY:
        return [(("rules", "categorical_method"), f"{method} needs numeric columns; "
                 "categorical columns take psi or jensenshannon")]
    return []


def _from_log(ctx: StepContext, params: DriftParams, model_name: str,
              label: str | None) -> tuple[Any, list[str]]:
    """The log's answered requests (status 200) as scored rows: the inputs and features
    with `prediction` and `model_version`, the log's other columns dropped, and the
    champion's label column where `loopline feedback` brought labels."""
    from datetime import UTC, datetime, timedelta

    from loopline.integrations import prediction_labels, prediction_log
    from loopline.spec.durations import duration_seconds

    folder = prediction_log.log_folder(ctx.artifacts_root, model_name)
    until = datetime.now(UTC)
    since = until - timedelta(seconds=duration_seconds(params.log_window))
    frame = prediction_log.read(folder, since, until)
    frame = frame[frame[prediction_log.STATUS] == 200]
    if label and label not in frame.columns and not frame.empty:
        labels = prediction_labels.read(prediction_labels.labels_folder(ctx.artifacts_root,
                                                                         model_name))
        if labels:
            joined = prediction_labels.join(frame, labels)
            if joined[prediction_labels.LABEL].notna().any():
                frame = joined.rename(columns={prediction_labels.LABEL: label})
    kept = (PREDICTION, MODEL_VERSION)
    frame = frame[[c for c in frame.columns
                   if c not in prediction_log.LOG_COLUMNS or c in kept]]
    return frame.reset_index(drop=True), [f"{folder} {since.isoformat()}..{until.isoformat()}"]


def _current(ctx: StepContext, params: DriftParams, model_name: str,
             label: str | None = None) -> tuple[Any, list[str]]:
    import pandas as pd

    given = ctx.input_path("current")
    if given is not None:
        return pd.read_parquet(given), [str(given)]
    if params.current == "log":
        return _from_log(ctx, params, model_name, label)
    folder = monitoring.batch_folder(ctx.artifacts_root, ctx.project_root, params.monitoring,
                                     model_name)
    batches = monitoring.latest(folder, params.window)
    if not batches:
        return pd.DataFrame(), []
    try:
        return monitoring.read_batches(batches), batches
    except monitoring.UnreadableBatch as exc:
        raise StepFailed(str(exc)) from exc


def _default_columns(champion: ModelVersion, reference: Any) -> list[str]:
    import pandas as pd

    inputs = champion.info.get("inputs") or [c for c in reference.columns
                                             if c != champion.info.get("label")]
    # Timestamps always drift (time moves on); they say nothing about the data.
    return [c for c in inputs if c in reference.columns
            and not pd.api.types.is_datetime64_any_dtype(reference[c])]


def _predictions(champion: ModelVersion, model: Any, frame: Any) -> Any:
    from loopline.ml.metrics import predict_scores

    if PREDICTION in frame.columns and MODEL_VERSION in frame.columns and \
            (frame[MODEL_VERSION].astype(str) == champion.version).all():
        return frame[PREDICTION].to_numpy()
    return predict_scores(model, frame, champion.info.get("task", "classification"))


def _performance(champion: ModelVersion, current: Any, scores: Any,
                 max_drop: float) -> dict[str, Any] | None:
    """The champion's primary metric on labelled current rows vs its evaluation."""
    from loopline.ml.gate import worsening
    from loopline.ml.metrics import HIGHER_IS_BETTER, quality

    label, metric = champion.info.get("label"), champion.primary_metric
    if not label or label not in current.columns or metric not in champion.eval_metrics:
        return None
    known = current[label].notna().to_numpy()
    if known.sum() < 2 or current[label][known].nunique() < 2:
        return None
    now = quality(champion.info.get("task", "classification"), current[label][known].to_numpy(),
                  scores[known], champion.info.get("classes") or [False, True])[metric]
    before = champion.eval_metrics[metric]
    drop = worsening(before, now, HIGHER_IS_BETTER.get(metric, True))
    return {"metric": metric, "evaluation": before, "current": now, "drop": drop,
            "max_drop": max_drop, "labelled_rows": int(known.sum()), "degraded": drop > max_drop}


def _write(ctx: StepContext, summary: dict[str, Any]) -> StepResult:
    ctx.output_path("summary").write_text(json.dumps(summary, indent=2, default=float))
    if not ctx.output_path("report").exists():
        ctx.output_path("report").write_text(
            "<html><body><p>No drift report: " + "; ".join(summary.get("warnings", []))
            + "</p></body></html>")
    for warning in summary.get("warnings", []):
        ctx.log(f"WARNING: {warning}")
    ctx.log(f"drift: {summary['drift']}, action: {summary['action']}"
            + (f" ({'; '.join(summary['reasons'])})" if summary.get("reasons") else ""))
    metrics = {"share_drifted": summary["share_drifted"],
               "retrain": float(summary["action"] == "retrain")}
    return StepResult(metrics=metrics, facts={"drift": {k: summary[k] for k in
                                                       ("drift", "action", "share_drifted")}})


def _empty(reason: str, **extra: Any) -> dict[str, Any]:
    return {"drift": False, "action": "none", "share_drifted": 0.0, "columns": {},
            "reasons": [], "warnings": [reason], **extra}


def _model_checks(champion: ModelVersion, params: DriftParams, reference: Any,
                  current: Any) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Prediction drift and the metric on labelled rows: (summary part, reasons, warnings)."""
    from loopline.ml.drift_stats import column_drift

    part: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if params.prediction is None and params.metric_max_drop is None:
        return part, reasons, []
    model = champion.load()
    current_scores = _predictions(champion, model, current)
    if current_scores.ndim != 1:
        return part, reasons, ["prediction drift and the metric need one score per row; "
                               f"{champion.name} is multi-class: skipped"]
    if params.prediction is not None:
        limits = params.prediction
        prediction = column_drift(PREDICTION, "psi", _predictions(champion, model, reference),
                                  current_scores, True, limits.warn, limits.retrain)
        part["prediction"] = prediction.to_json()
        reasons[f"prediction drift (PSI {prediction.score:.3f})"] = prediction.severity
    if params.metric_max_drop is not None:
        performance = _performance(champion, current, current_scores, params.metric_max_drop)
        part["performance"] = performance
        if performance and performance["degraded"]:
            reasons[f"{performance['metric']} {performance['current']:.3f} vs "
                    f"{performance['evaluation']:.3f} at evaluation"] = "retrain"
    return part, reasons, []


def run(ctx: StepContext, params: DriftParams) -> StepResult:
    try:
        champion = resolve_for_step(ctx, params.model)
    except NoChampion as exc:
        return _write(ctx, _empty(f"{exc}; nothing compared, nothing triggered"))
    current, window = _current(ctx, params, champion.name, champion.info.get("label"))
    summary: dict[str, Any] = {"champion": {"name": champion.name, "version": champion.version},
                               "window": window}
    if len(current) < params.min_rows:
        what = "the current window is empty" if current.empty else \
            f"the current window has {len(current)} rows (< min_rows {params.min_rows})"
        return _write(ctx, _empty(f"{what}; no drift decision, nothing triggered", **summary))
    with tempfile.TemporaryDirectory() as scratch:
        reference = champion.reference(Path(scratch))
    columns = params.columns or _default_columns(champion, reference)
    summary["rows"] = {"reference": len(reference), "current": len(current)}
    try:
        scored = score_columns(reference, current, columns, params.rules)  # schema first
        part, reasons, warnings = _model_checks(champion, params, reference, current)
        verdict = decide(scored, params.rules, reasons)
    except SchemaMismatch as exc:
        raise StepFailed(str(exc)) from exc
    summary.update({**part, "drift": verdict.action != "none", "action": verdict.action,
                    "share_drifted": verdict.share_drifted, "reasons": verdict.reasons,
                    "columns": verdict.columns_json(), "warnings": warnings})
    _report(ctx, params, reference, current, verdict, summary)
    return _write(ctx, summary)


def _report(ctx: StepContext, params: DriftParams, reference: Any, current: Any,
            verdict: Any, summary: dict[str, Any]) -> None:
    from loopline.integrations import evidently_report as drift_report
    from loopline.ml.drift_decision import is_numeric

    numeric = [c.column for c in verdict.columns if is_numeric(reference[c.column])]
    categorical = [c.column for c in verdict.columns if c.column not in numeric]
    rows = drift_report.render(reference, current, numeric, categorical,
                               {c.column: c.method for c in verdict.columns},
                               {c.column: c.threshold for c in verdict.columns},
                               ctx.output_path("report"), params.report_rows)
    summary["report_sample_rows"] = rows


COMPONENT = Component(
    name="drift.evidently",
    version="1",
    description="Compare current data with the champion's training data; decide on retraining.",
    params=DriftParams,
    run=run,
    check=_check,
    inputs={"current": Input("Current rows; default: the latest batches predict.batch kept.",
                             optional=True)},
    outputs={
        "summary": Output("drift.json", "json",
                          "drift, share_drifted, per-column method/score/threshold, action."),
        "report": Output("report.html", "report", "Evidently's data drift report (a sample)."),
    },
    reads_registry=True,
    cacheable=False,
)
