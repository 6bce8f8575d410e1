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
    StepFailed,
    StepResult,
)
from loopline.components.feast_repo import declared_names, open_store

ROW_ID = "__loopline_row"


class FeastParams(ComponentParams):
    repo: str = Field("feature_repo", description="Feast repo folder, relative to the project.")
    service: str = Field(description="FeatureService whose features are joined.")
    timestamp_column: str = Field(
        description="When each row happened (UTC); features known at or before it are used.")
    assume_utc: bool = Field(
        False, description="Treat naive timestamps as UTC instead of refusing them.")


def _repo(params: FeastParams, root: Path) -> Path:
    path = Path(params.repo)
    return path if path.is_absolute() else root / path


def _check(params: FeastParams, root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    repo = _repo(params, root)
    if not (repo / "feature_store.yaml").exists():
        return [(("repo",), f"no Feast repo at {repo} (feature_store.yaml missing)")]
    services = declared_names(repo)["service"]
    if params.service not in services:
        import difflib

        close = difflib.get_close_matches(params.service, sorted(services), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return [(("service",), f"feature service {params.service!r} is not defined in "
                 f"{params.repo}{hint}; defined: {', '.join(sorted(services)) or 'none'}")]
    return []


def _sources(params: FeastParams, root: Path) -> list[str]:
    repo = _repo(params, root)
    return [str(p) for p in sorted(repo.glob("*.py"))] + [str(repo / "feature_store.yaml")]


def entity_timestamps(frame, column: str, assume_utc: bool):  # type: ignore[no-untyped-def]
    """UTC microsecond timestamps (what Feast's duckdb store needs), or a clear refusal."""
    import pandas as pd

    if column not in frame.columns:
        raise StepFailed(f"entity rows have no timestamp column {column!r}; "
                         f"columns: {', '.join(map(str, frame.columns))}")
    values = pd.to_datetime(frame[column])
    if values.dt.tz is None:
        if not assume_utc:
            raise StepFailed(f"timestamp column {column!r} has no time zone; point-in-time "
                             "joins on local times are silently wrong. Convert to UTC, or "
                             "set assume_utc: true if the values already are UTC")
        values = values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def historical_features(store, service_name: str, frame, column: str,  # type: ignore[no-untyped-def]
                        assume_utc: bool = False):
    """The frame with the service's features joined point-in-time; same rows, same order."""
    service = store.get_feature_service(service_name)
    keys = sorted({key for projection in service.feature_view_projections
                   for key in store.get_feature_view(projection.name).join_keys})
    if missing := [k for k in keys if k not in frame.columns]:
        raise StepFailed(f"entity rows lack join key(s) {missing} of {service_name!r}")
    entity_df = frame[keys].copy()
    entity_df["event_timestamp"] = entity_timestamps(frame, column, assume_utc)
    entity_df[ROW_ID] = range(len(frame))
    joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    if len(joined) != len(frame):
        raise StepFailed(f"the feature store returned {len(joined)} rows for {len(frame)} "
                         "entity rows; refusing a join that drops or duplicates rows")
    joined = joined.sort_values(ROW_ID).reset_index(drop=True)
    names = [c for c in joined.columns if c not in (*keys, "event_timestamp", ROW_ID)]
    out = frame.reset_index(drop=True).copy()
    for name in names:
        out[name] = joined[name].to_numpy()
    return out, names


def run(ctx: StepContext, params: FeastParams) -> StepResult:
    import pandas as pd

    store = open_store(_repo(params, ctx.project_root))
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
