"""`registry.promote`: register the model with its lineage; move `champion` only on a pass.

Order matters for safety: log and register, load the new version back and check it predicts
what the trained model predicts, and only then move aliases. A crash at any earlier point
leaves the aliases where they were.
"""

from __future__ import annotations

import json
import logging
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
from loopline.integrations import mlflow_registry as reg
from loopline.integrations.model_card import ModelCard


class PromoteParams(ComponentParams):
    tags: dict[str, str] = Field(default_factory=dict, description="Extra version tags.")
    smoke_rows: int = Field(5, ge=1, description="Rows scored to check the registered copy.")


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


def _requirement(package: str) -> str:
    from importlib.metadata import version

    return f"{package}=={version(package).split('+')[0]}"


def run(ctx: StepContext, params: PromoteParams) -> StepResult:
    import joblib
    import mlflow
    import numpy as np
    import pandas as pd

    name = ctx.model_name
    if not name:
        raise StepFailed("registry.model_name is not set in the spec")
    verdict = json.loads(ctx.input_path("verdict").read_text())
    info = json.loads(ctx.input_path("info").read_text())
    validation_path = ctx.input_path("validation")
    validation = json.loads(validation_path.read_text()) if validation_path else None
    model = joblib.load(ctx.input_path("model"))

    mlflow.set_tracking_uri(ctx.tracking_uri)
    mlflow.set_registry_uri(ctx.registry_uri)
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
    rows_path = ctx.input_path("sample") or ctx.input_path("reference")
    if rows_path is not None:
        sample = pd.read_parquet(rows_path).head(params.smoke_rows)
        sample = sample.drop(columns=[info.get("label")], errors="ignore")
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        if not np.allclose(getattr(loaded, method)(sample), getattr(model, method)(sample)):
            raise StepFailed(f"{name} v{version} does not reproduce the trained model's "
                             "predictions; aliases left unchanged")
    reg.mark_verified(client, name, version)

    reg.move_alias(client, name, reg.CHALLENGER, version, reason=f"run {ctx.run_id}")
    failed = [c["detail"] for c in verdict["checks"] if not c["passed"]]
    if verdict["passed"]:
        previous = reg.crown(client, name, version, reason=f"gate passed in run {ctx.run_id}")
        ctx.log(f"{name} v{version} is now champion (was {previous or 'none'})")
    else:
        reg.record_event(client, name, alias=reg.CHAMPION, version=None, candidate=version,
                         reason="gate failed: " + "; ".join(failed))
        ctx.log(f"{name} v{version} registered as challenger; champion unchanged: "
                + "; ".join(failed))
    aliases = sorted(client.get_model_version(name, version).aliases or [])
    result = {"name": name, "version": version, "aliases": aliases,
              "promoted": bool(verdict["passed"]), "uri": f"models:/{name}/{version}"}
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
