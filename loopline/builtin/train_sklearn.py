"""`train.sklearn`: fit a named scikit-learn estimator and bundle it with its feature transform."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepFailed,
    StepResult,
)

ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
    },
    "regression": {
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
        "ridge": "sklearn.linear_model:Ridge",
        "linear_regression": "sklearn.linear_model:LinearRegression",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
    },
}


class TrainParams(ComponentParams):
    task: Literal["classification", "regression"] = "classification"
    estimator: str = Field("hist_gradient_boosting", description="; ".join(
        f"{task}: {', '.join(names)}" for task, names in ESTIMATORS.items()))
    params: dict[str, Any] = Field(default_factory=dict, description="Estimator arguments.")
    seed: int = Field(42, description="random_state, where the estimator takes one.")

    @model_validator(mode="after")
    def _known(self) -> TrainParams:
        known = ESTIMATORS[self.task]
        if self.estimator not in known:
            raise ValueError(f"unknown {self.task} estimator {self.estimator!r}; "
                             f"choose from {', '.join(known)}")
        return self


def make_estimator(params: TrainParams) -> Any:
    import importlib
    import inspect

    module, _, cls_name = ESTIMATORS[params.task][params.estimator].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = inspect.signature(cls).parameters
    if unknown := sorted(set(params.params) - set(accepted)):
        raise StepFailed(f"{cls_name} does not take {unknown}")
    kwargs = dict(params.params)
    if "random_state" in accepted:
        kwargs.setdefault("random_state", params.seed)
    estimator = cls(**kwargs)
    try:  # the estimator's own rules, checked before fitting and named as spec fields
        estimator._validate_params()
    except ValueError as exc:  # sklearn's InvalidParameterError
        bad = next((name for name in kwargs if f"'{name}'" in str(exc)), "")
        field = (f"params.params.{bad}" if bad in params.params else
                 "params.seed" if bad == "random_state" else "params.params")
        raise StepFailed(f"{field}: {exc}") from exc
    return estimator


def run(ctx: StepContext, params: TrainParams) -> StepResult:
    import time

    import joblib
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from loopline.ml.model_info import model_info

    transform = joblib.load(ctx.input_path("transform"))
    label = transform.label
    if not label:
        raise StepFailed("the feature transform has no label: set features.transform label")
    train = pd.read_parquet(ctx.input_path("train"))
    features, target = train.drop(columns=[label]), train[label]
    if params.task == "classification" and target.nunique() < 2:
        raise StepFailed(f"label {label!r} has a single class in training data")
    estimator = make_estimator(params)
    started = time.perf_counter()
    estimator.fit(features, target)
    seconds = time.perf_counter() - started
    model = Pipeline([("features", transform), ("model", estimator)])
    joblib.dump(model, ctx.output_path("model"))
    info = model_info(params.task, params.estimator, label, "sklearn",
                      transform.input_columns(), getattr(estimator, "classes_", []))
    ctx.output_path("info").write_text(json.dumps(info, indent=2))
    ctx.log_params({"estimator": params.estimator, **params.params})
    rate = len(train) / seconds if seconds else float("inf")
    ctx.log(f"{params.estimator} on {len(train):,} rows x {features.shape[1]} features: "
            f"{seconds:.1f}s ({rate:,.0f} rows/s)")
    return StepResult(metrics={"train_seconds": round(seconds, 3), "train_rows": len(train)})


COMPONENT = Component(
    name="train.sklearn",
    version="1",
    description="Fit a scikit-learn estimator; the model scores raw rows (transform bundled).",
    params=TrainParams,
    run=run,
    task=lambda params: params.task,
    inputs={"train": Input("Features + label."), "transform": Input("The fitted transform.")},
    outputs={
        "model": Output("model.joblib", "model", "Pipeline(features, estimator)."),
        "info": Output("model.json", "json", "Task, label, estimator, raw inputs."),
    },
)
