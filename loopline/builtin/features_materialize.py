"""`features.materialize`: load the online store once a model is promoted, so serving reads
the same features the champion was trained with."""

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
from loopline.integrations.feast import declared_names, open_store, source_path
from loopline.integrations.feast_config import config_field, repo_problem, repo_sources
from loopline.spec.paths import project_path


class MaterializeParams(ComponentParams):
    repo: str = Field("feature_repo", description="Feast repo folder, relative to the project.")
    views: list[str] = Field(default_factory=list, description="Default: every feature view.")
    only_if_promoted: bool = Field(True, description="Skip when the gate kept the champion.")
    config: str = config_field()


def _check(params: MaterializeParams, root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    repo = project_path(params.repo, root)
    if problem := repo_problem(repo, params.config):
        return [((problem[0],), problem[1])]
    views = declared_names(repo)["view"]
    return [(("views", i), f"feature view {v!r} is not defined in {params.repo}")
            for i, v in enumerate(params.views) if v not in views]


def _sources(params: MaterializeParams, root: Path) -> list[str]:
    """The definitions and the config: which online store it writes counts in the cache key."""
    return repo_sources(project_path(params.repo, root), params.config)


def run(ctx: StepContext, params: MaterializeParams) -> StepResult:
    registered_path = ctx.input_path("registered")
    registered = json.loads(registered_path.read_text()) if registered_path else {}
    promoted = bool(registered.get("promoted", True))
    out = {"promoted": promoted, "model": registered.get("version"), "views": []}
    if params.only_if_promoted and not promoted:
        ctx.log("champion unchanged: the online store keeps serving its features")
        ctx.output_path("report").write_text(json.dumps(out, indent=2))
        return StepResult(metrics={"materialized_views": 0})
    import pandas as pd

    repo = project_path(params.repo, ctx.project_root)
    store = open_store(repo, config=params.config)
    views = params.views or [v.name for v in store.list_feature_views()]
    for name in views:
        source = store.get_feature_view(name).batch_source
        times = pd.read_parquet(source_path(repo, source), columns=[source.timestamp_field])
        start = times[source.timestamp_field].min().to_pydatetime()
        end = (times[source.timestamp_field].max() + pd.Timedelta(seconds=1)).to_pydatetime()
        store.materialize(start_date=start, end_date=end, feature_views=[name])
        out["views"].append({"name": name, "start": str(start), "end": str(end)})
    ctx.log(f"materialized {len(views)} view(s) into the online store")
    ctx.output_path("report").write_text(json.dumps(out, indent=2))
    return StepResult(metrics={"materialized_views": len(views)})


COMPONENT = Component(
    name="features.materialize",
    version="1",
    description="Materialize feature views to the online store after a promotion.",
    params=MaterializeParams,
    run=run,
    inputs={"registered": Input("promote's registered.json (skips when not promoted).",
                                optional=True)},
    outputs={"report": Output("materialized.json", "json", "Views and time ranges loaded.")},
    check=_check,
    sources=_sources,
)
