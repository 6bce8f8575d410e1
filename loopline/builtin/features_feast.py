"""`features.feast`: point-in-time correct training rows from a Feast feature service."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepResult,
)
from loopline.integrations.feast import (
    declared_names,
    historical_features,
    open_store,
)
from loopline.integrations.feast_config import config_field, repo_problem, repo_sources
from loopline.spec.hints import did_you_mean
from loopline.spec.paths import project_path


class FeastParams(ComponentParams):
    repo: str = Field("feature_repo", description="Feast repo folder, relative to the project.")
    service: str = Field(description="FeatureService whose features are joined.")
    timestamp_column: str = Field(
        description="When each row happened (UTC); features known at or before it are used.")
    assume_utc: bool = Field(
        False, description="Treat naive timestamps as UTC instead of refusing them.")
    config: str = config_field()


def _repo(params: FeastParams, root: Path) -> Path:
    return project_path(params.repo, root)


def _check(params: FeastParams, root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    repo = _repo(params, root)
    if problem := repo_problem(repo, params.config):
        return [((problem[0],), problem[1])]
    services = declared_names(repo)["service"]
    if params.service not in services:
        hint = did_you_mean(params.service, sorted(services))
        return [(("service",), f"feature service {params.service!r} is not defined in "
                 f"{params.repo}{hint}; defined: {', '.join(sorted(services)) or 'none'}")]
    return []


def _sources(params: FeastParams, root: Path) -> list[str]:
    return repo_sources(_repo(params, root), params.config)


def run(ctx: StepContext, params: FeastParams) -> StepResult:
    import pandas as pd

    store = open_store(_repo(params, ctx.project_root), config=params.config)
    names: list[str] = []
    coverage = {}
    for split in ("train", "eval"):
        path = ctx.input_path(split)
        frame = pd.read_parquet(path) if path is not None else None
        if frame is None:
            frame = pd.read_parquet(ctx.input_path("train")).iloc[0:0]
        enriched, names = historical_features(store, params.service, frame,
                                              params.timestamp_column, params.assume_utc)
        enriched.to_parquet(ctx.output_path(split), index=False)
        if len(enriched):
            coverage[split] = float(enriched[names].notna().all(axis=1).mean())
    ctx.output_path("schema").write_text(json.dumps(
        {"service": params.service, "features": names, "coverage": coverage,
         "repo": params.repo, "timestamp_column": params.timestamp_column,
         "assume_utc": params.assume_utc}, indent=2))
    ctx.log(f"{len(names)} features from {params.service!r}; rows with every feature: "
            + ", ".join(f"{k} {v:.1%}" for k, v in coverage.items()))
    return StepResult(metrics={f"coverage_{k}": v for k, v in coverage.items()})


COMPONENT = Component(
    name="features.feast",
    version="1",
    description="Join a Feast feature service point-in-time (duckdb offline store).",
    params=FeastParams,
    run=run,
    inputs={"train": Input("Entity rows for training."),
            "eval": Input("Entity rows for evaluation.", optional=True)},
    outputs={
        "train": Output("train.parquet", "dataset", "Train rows with features joined."),
        "eval": Output("eval.parquet", "dataset", "Eval rows with features joined."),
        "schema": Output("feast.json", "json",
                         "Service, repo, timestamp column, feature names, coverage."),
    },
    check=_check,
    sources=_sources,
)
