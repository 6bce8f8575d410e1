"""`loopline submit kfp`: a run (or a recurring run on the spec's schedule) through kfp.Client.

Auth comes from the usual KFP environment: KF_PIPELINES_TOKEN (a bearer token) or the
client's own credential discovery (in-cluster service-account token, kube config)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from loopline.backends.kfp.compile import KfpCompiler, pipeline_name
from loopline.spec.load import LoadedSpec
from loopline.spec.schedules import cron_fields


def kfp_cron(schedule: str) -> str:
    """KFP cron has a seconds field: `0 3 * * *` -> `0 0 3 * * *`; presets as Airflow reads
    them (the spec accepts nothing else)."""
    return "0 " + cron_fields(schedule)


def submit(loaded: LoadedSpec, host: str, experiment: str | None = None,
           recurring: bool = False, image: str | None = None,
           project_root: str | None = "/app", params: dict[str, Any] | None = None) -> dict:  # type: ignore[type-arg]
    # Not `kfp.Client`: inside a KFP task (_KFP_RUNTIME=true) the package skips that import.
    from kfp.client import Client

    client = Client(host=host, existing_token=os.environ.get("KF_PIPELINES_TOKEN"))
    experiment_name = experiment or loaded.spec.name
    with tempfile.TemporaryDirectory() as tmp:
        package = KfpCompiler().compile(loaded, Path(tmp) / "pipeline.yaml", image, project_root)
        arguments = {"params": params} if params else {}
        if recurring:
            if not loaded.spec.schedule:
                raise ValueError(f"{loaded.display}: --schedule needs a `schedule:` in the spec")
            exp = client.create_experiment(name=experiment_name)
            job = client.create_recurring_run(
                experiment_id=exp.experiment_id, job_name=f"{pipeline_name(loaded)}-schedule",
                cron_expression=kfp_cron(loaded.spec.schedule), pipeline_package_path=str(package),
                params=arguments, max_concurrency=1, no_catchup=True)
            return {"recurring_run_id": job.recurring_run_id, "experiment": experiment_name,
                    "cron": kfp_cron(loaded.spec.schedule)}
        result = client.create_run_from_pipeline_package(
            str(package), arguments=arguments, experiment_name=experiment_name,
            run_name=f"{pipeline_name(loaded)}-loopline")
        return {"run_id": result.run_id, "experiment": experiment_name}
