"""`registry.promote`: register the model with its lineage; move `champion` only on a pass.

Order matters for safety: log and register, load the new version back and check it predicts
what the trained model predicts, and only then move aliases. A crash at any earlier point
leaves the aliases where they were.

The aliases move under the model's lock (`mlflow_registry.locked`), and the champion moves
only if it is still the version the gate judged against: two runs that finish together never
both crown themselves over a champion one of them never saw.
"""

from __future__ import annotations

import json
import logging
import re
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
from loopline.integrations import mlflow_registry as reg
from loopline.integrations.model_card import ModelCard


class PromoteParams(ComponentParams):
    tags: dict[str, str] = Field(default_factory=dict, description="Extra version tags.")
    smoke_rows: int = Field(5, ge=1, description="Rows scored to check the registered copy.")
    strategy: Literal["direct", "canary"] = Field(
        "direct", description="direct: a passing version becomes champion at once. canary: "
                              "it gets the `canary` alias and the spec's `rollout:` walks it "
                              "to all traffic (the first version, with no champion, is "
                              "crowned directly).")


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for package in ("loopline", "scikit-learn", "pandas", "numpy", "joblib", "pyarrow"):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return requirements


def _log_model(model: Any, info: dict[str, Any], name: str, tags: dict[str, str]) -> Any:
    """Log with the model's native flavour, so loading gives the real object back."""
    import mlflow

    if info.get("flavor") == "pytorch":
        # pickle, not the default pt2 export: pt2 loads back as a GraphModule without our
        # predict_proba and bundled transform.
        return mlflow.pytorch.log_model(
            model, name="model", serialization_format="pickle",
            pip_requirements=[*_pip_requirements(), _requirement("torch")],
            registered_model_name=name, tags=tags)
    return mlflow.sklearn.log_model(
        model, name="model", serialization_format="cloudpickle",
        pip_requirements=_pip_requirements(), registered_model_name=name, tags=tags)


CANARY = "canary"  # the alias a rollout walks (runtime.rollout)
ANY_CHAMPION = "any"  # the gate compared with another alias: no champion to check


def _judged_against(verdict: dict[str, Any]) -> str | None:
    """The champion version the gate compared the challenger with: None when there was no
    champion, ANY_CHAMPION when it compared with another alias (`compare_with`). The verdict's
    `judged_against` says it; verdicts written before it existed are read from
    `champion.version` and the gate's note (`champion v3 could not be loaded ...`)."""
    if judged := verdict.get("judged_against"):  # evaluate.gate writes it
        return judged["version"] if judged["alias"] == reg.CHAMPION else ANY_CHAMPION
    note = str(verdict.get("champion_note", ""))
    alias = re.match(r"(?:no )?([\w.-]+) (?:is v\d|v\d|yet)", note)
    if alias and alias.group(1) != reg.CHAMPION:
        return ANY_CHAMPION
    compared = verdict.get("champion")
    if compared and compared.get("version") is not None:
        return str(compared["version"])
    named = re.match(r"champion v(\d+) ", note)
    return named.group(1) if named else None


def _check_rows(ctx: StepContext, model: Any, info: dict[str, Any], count: int) -> tuple[Any, str]:
    """Rows to score the registered copy on, and where they came from: the `sample` input,
    else `reference`, else rows made from what the model's own feature transform learned."""
    import pandas as pd

    for name in ("sample", "reference"):
        if (path := ctx.input_path(name)) is not None:
            rows = pd.read_parquet(path).head(count)
            return rows.drop(columns=[info.get("label")], errors="ignore"), f"{name} rows"
    transform = getattr(model, "transform", None)  # a torch bundle carries its transform
    if hasattr(model, "named_steps"):
        transform = model.named_steps.get("features", transform)
    if transform is None or not hasattr(transform, "numeric_stats_"):
        return None, "no sample or reference wired and no feature transform in the model"
    return _synthetic_rows(transform, list(info.get("inputs") or []), count), \
        "rows made from the model's feature transform (wire `sample:` for real rows)"


def _synthetic_rows(transform: Any, inputs: list[str], count: int) -> Any:
    """Plausible raw rows: numeric columns spread around their training centre, known
    categories in turn, dates a day apart; other raw inputs (of derived columns) counted up."""
    import pandas as pd

    columns: dict[str, list[Any]] = {}
    for column, (fill, centre, scale) in transform.numeric_stats_.items():
        values = [fill, *(centre + scale * (i - count // 2) / 2 for i in range(1, count))]
        columns[column] = values[:count]
    for column, cat in transform.categories_.items():
        known = list(cat.categories) or ["unknown"]
        columns[column] = [known[i % len(known)] for i in range(count)]
    for column in transform.date_parts:
        columns[column] = list(pd.date_range("2020-01-01", periods=count, freq="D", tz="UTC"))
    for column in inputs:
        columns.setdefault(column, [float(100 * i) for i in range(count)])
    return pd.DataFrame(columns)


def _requirement(package: str) -> str:
    from importlib.metadata import version

    return f"{package}=={version(package).split('+')[0]}"


def run(ctx: StepContext, params: PromoteParams) -> StepResult:
    import joblib
    import mlflow
    import numpy as np

    name = ctx.model_name
    if not name:
        raise StepFailed("registry.model_name is not set in the spec")
    verdict = json.loads(ctx.input_path("verdict").read_text())
    info = json.loads(ctx.input_path("info").read_text())
    validation_path = ctx.input_path("validation")
    validation = json.loads(validation_path.read_text()) if validation_path else None
    model = joblib.load(ctx.input_path("model"))

    reg.point_mlflow_at(ctx.tracking_uri, ctx.registry_uri)
    started_here = mlflow.active_run() is None
    if started_here:
        mlflow.start_run(run_name=f"{ctx.pipeline}.{ctx.step}")
    # (cloud)pickle on purpose: the bundle holds Loopline's own transform class, which skops
    # would refuse to load without a trusted-types list; MLflow's warning about it is noise.
    for flavour in ("mlflow.sklearn", "mlflow.pytorch"):
        logging.getLogger(flavour).setLevel(logging.ERROR)
    features_path = ctx.input_path("features")
    card = ModelCard.from_run(ctx.lineage(), verdict, validation, info,
                              json.loads(features_path.read_text()) if features_path else None)
    try:
        logged = _log_model(model, info, name, {**card.to_tags(), **params.tags})
        reference_path = ctx.input_path("reference")
        if reference_path is not None:
            # The drift job's baseline travels with the model version, not as a path typed twice.
            mlflow.log_artifact(str(reference_path), artifact_path=reg.REFERENCE_DIR)
            card = card.with_reference(f"runs:/{mlflow.active_run().info.run_id}/"
                                       f"{reg.REFERENCE_DIR}/{reference_path.name}")
    finally:
        if started_here:
            mlflow.end_run()
    version = str(logged.registered_model_version)
    client = reg.client(ctx.tracking_uri, ctx.registry_uri)
    for key, value in {**card.to_tags(), **params.tags}.items():
        client.set_model_version_tag(name, version, key, value)

    # The registered copy must load and predict exactly what we trained before any alias
    # points at it; the `verified` tag, written last, says it did.
    try:
        loaded = reg.load_model(ctx.tracking_uri, f"models:/{name}/{version}")
    except Exception as exc:  # any load failure means a broken version
        raise StepFailed(f"{name} v{version} could not be loaded back ({exc}); "
                         "aliases left unchanged") from exc
    rows, source = _check_rows(ctx, model, info, params.smoke_rows)
    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    expected = None
    if rows is not None:
        try:
            expected = getattr(model, method)(rows)
        except Exception as exc:  # only made-up rows may be unscorable: re-raised below
            if source in ("sample rows", "reference rows"):
                raise
            source = f"the trained model cannot score {source} ({exc})"
    if expected is None:
        ctx.log(f"{name} v{version} loaded back, but its predictions were not compared: "
                f"{source}; wire `sample:` into this step")
    elif not np.allclose(getattr(loaded, method)(rows), expected, equal_nan=True):
        raise StepFailed(f"{name} v{version} does not reproduce the trained model's "
                         f"predictions on {len(rows)} {source}; aliases left unchanged")
    else:
        ctx.log(f"{name} v{version} loaded back and reproduced the trained model's "
                f"predictions on {len(rows)} {source}")
    reg.mark_verified(client, name, version)

    failed = [c["detail"] for c in verdict["checks"] if not c["passed"]]
    judged = _judged_against(verdict)
    promoted = False
    # Read, decide and move under the model's lock: another run's promote, a rollback or a
    # manual promote cannot slip in between reading the champion and crowning.
    with reg.locked(client, name):
        reg.move_alias(client, name, reg.CHALLENGER, version, reason=f"run {ctx.run_id}")
        current = reg.version_for_alias(client, name, reg.CHAMPION)
        if not verdict["passed"]:
            reg.record_event(client, name, alias=reg.CHAMPION, version=None,
                             candidate=version, reason="gate failed: " + "; ".join(failed))
            ctx.log(f"{name} v{version} registered as challenger; champion unchanged: "
                    + "; ".join(failed))
        elif judged not in (current, ANY_CHAMPION):
            reason = (f"champion moved from v{judged or '-'} to v{current or '-'} since the "
                      f"gate judged; not promoted (re-run to compare)")
            reg.record_event(client, name, alias=reg.CHAMPION, version=None,
                             candidate=version, reason=reason)
            ctx.log(f"{name} v{version} registered as challenger; {reason}")
        elif params.strategy == "canary" and current is not None:
            reg.move_alias(client, name, CANARY, version, reason=f"gate passed in run "
                           f"{ctx.run_id}; rollout against champion v{current}",
                           judged_against=judged)
            ctx.log(f"{name} v{version} is the canary: `loopline rollout` walks it to all "
                    f"traffic against champion v{current}")
        else:
            previous = reg.crown(client, name, version, reason=f"gate passed in run "
                                 f"{ctx.run_id}", judged_against=judged)
            promoted = True
            ctx.log(f"{name} v{version} is now champion (was {previous or 'none'})")
    aliases = sorted(client.get_model_version(name, version).aliases or [])
    result = {"name": name, "version": version, "aliases": aliases,
              "promoted": promoted, "uri": f"models:/{name}/{version}"}
    ctx.output_path("registered").write_text(json.dumps(result, indent=2))
    return StepResult(facts={"model": {k: result[k] for k in ("name", "version", "aliases")}})


COMPONENT = Component(
    name="registry.promote",
    version="1",
    description="Register in MLflow with lineage; challenger always, champion on a passed gate.",
    params=PromoteParams,
    run=run,
    inputs={
        "model": Input("The trained model bundle."),
        "info": Input("The model's task/label/estimator."),
        "verdict": Input("The gate's verdict."),
        "validation": Input("Validation summary, for lineage.", optional=True),
        "sample": Input("Rows to smoke-test the registered copy.", optional=True),
        "reference": Input("The training rows, kept with the version as drift's baseline.",
                           optional=True),
        "features": Input("The Feast join (service, repo), so scoring joins the same.",
                          optional=True),
    },
    outputs={"registered": Output("registered.json", "json", "Name, version, aliases.")},
    touches_registry=True,
)
