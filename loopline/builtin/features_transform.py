"""`features.transform`: declarative tabular features, fitted on train, applied to eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

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
from loopline.ml import expressions

DatePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "hour", "minute",
                   "is_weekend"]
Scaling = Literal["standard", "minmax", "none"]


class CategoricalOptions(ComponentParams):
    encoding: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int = Field(50, ge=1, description="Most frequent categories kept.")
    min_frequency: float = Field(0.0, ge=0, lt=1, description="Rarer ones count as unknown.")


class FeatureParams(ComponentParams):
    label: str | None = Field(None, description="Target column, passed through untouched.")
    numeric: dict[str, Scaling] | list[str] = Field(default_factory=dict)
    categorical: dict[str, Literal["onehot", "ordinal"] | CategoricalOptions] = Field(
        default_factory=dict, description="Unknown values: all-zero one-hot / ordinal -1.")
    date_parts: dict[str, list[DatePart]] = Field(default_factory=dict)
    derived: dict[str, str] = Field(default_factory=dict, description="Name -> expression.")
    forbidden: list[str] = Field(
        default_factory=list, description="Columns that leak the answer; using one is an error.")

    def numeric_scaling(self) -> dict[str, str]:
        if isinstance(self.numeric, list):
            return {column: "standard" for column in self.numeric}
        return dict(self.numeric)

    def categorical_options(self) -> dict[str, dict[str, object]]:
        return {column: (CategoricalOptions(encoding=value) if isinstance(value, str) else value)
                .model_dump() for column, value in self.categorical.items()}

    def columns_read(self) -> dict[tuple[str, str], set[str]]:
        """Raw columns each feature reads, keyed by (section, feature) as written in the spec."""
        read: dict[tuple[str, str], set[str]] = {}
        for column in self.numeric_scaling():
            read["numeric", column] = {column} if column not in self.derived else set()
        for name, text in self.derived.items():
            try:
                read["derived", name] = expressions.columns(text)
            except expressions.ExpressionError:
                read["derived", name] = set()
        for section in ("date_parts", "categorical"):
            for column in getattr(self, section):
                read[section, column] = {column}
        return read


def _check(params: FeatureParams, _root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    problems = expressions.problems({("derived", k): v for k, v in params.derived.items()})
    forbidden = set(params.forbidden)
    for (section, feature), columns in params.columns_read().items():
        if leaked := sorted(columns & forbidden):
            problems.append(((section, feature), f"feature {feature!r} reads forbidden "
                             f"column(s) {leaked}: they leak the answer"))
        if params.label and params.label in columns:
            problems.append(((section, feature), f"feature {feature!r} reads the label "
                             f"{params.label!r}"))
    return problems


def build_transform(params: FeatureParams):  # type: ignore[no-untyped-def]
    from loopline.ml.feature_transform import FeatureTransform

    return FeatureTransform(numeric=params.numeric_scaling(),
                            categorical=params.categorical_options(),
                            date_parts={k: list(v) for k, v in params.date_parts.items()},
                            derived=dict(params.derived), label=params.label)


def run(ctx: StepContext, params: FeatureParams) -> StepResult:
    import joblib
    import pandas as pd

    train = pd.read_parquet(ctx.input_path("train"))
    needed = sorted(set().union(*params.columns_read().values(), *(
        [{params.label}] if params.label else [])))
    if missing := [c for c in needed if c not in train.columns]:
        raise StepFailed(f"training data lacks column(s) {missing}")
    transform = build_transform(params).fit(train)
    joblib.dump(transform, ctx.output_path("transform"))
    for split in ("train", "eval"):
        path = ctx.input_path(split)
        if split == "train":
            frame = train
        else:  # no eval input still yields an (empty) eval output, so the contract holds
            frame = pd.read_parquet(path) if path is not None else train.iloc[0:0]
        features = transform.transform(frame)
        if params.label:
            features[params.label] = frame[params.label].to_numpy()
        features.to_parquet(ctx.output_path(split), index=False)
    names = transform.feature_names_out_
    ctx.output_path("schema").write_text(json.dumps(
        {"features": names, "label": params.label, "inputs": transform.input_columns()}, indent=2))
    ctx.log(f"{len(names)} features from {len(transform.input_columns())} raw columns")
    return StepResult(metrics={"n_features": len(names)})


COMPONENT = Component(
    name="features.transform",
    version="1",
    description="Scale, encode, date parts and derived columns; fit on train, apply to eval.",
    params=FeatureParams,
    run=run,
    inputs={"train": Input("Raw training rows."), "eval": Input("Raw eval rows.", optional=True)},
    outputs={
        "train": Output("train.parquet", "dataset", "Features + label for training."),
        "eval": Output("eval.parquet", "dataset", "Features + label for evaluation."),
        "transform": Output("transform.joblib", "transform", "The fitted transform."),
        "schema": Output("features.json", "json", "Feature names, label, raw inputs."),
    },
    check=_check,
)
