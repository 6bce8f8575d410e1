"""Kubeflow Pipelines backend: a rollout as a recurring run of a one-task pipeline.

`<spec>-rollout` has one task that takes ONE acting look at the model's rollout, what
`loopline rollout evaluate SPEC --json` does (`runtime.rollout.evaluate`: advance, hold,
promote, roll back or wait). A KFP recurring run starts it every `rollout.every`, one at a
time and without catching up missed intervals: looks are cheap and idempotent, and all state
is in `rollout.json`, so a look that never ran is simply taken by the next one. No run waits
between looks, so nothing holds a pod while a step lasts hours. Each look is a pod start,
though: on a cluster, an `every` of a minute or more suits this better than seconds.

The task is a lightweight Python component like every other Loopline task on KFP: the step
image (`kubernetes.step_image`), the step environment (`compile._environment`), and the
spec's fingerprint checked before it acts (`base.check_fingerprint`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from loopline.backends.base import spec_fingerprint
from loopline.backends.kfp.compile import _environment, pipeline_name
from loopline.backends.kubernetes import step_image
from loopline.runtime.environment import step_environment
from loopline.spec.load import LoadedSpec

LONG = ("looks", "decisions")  # kept in rollout.json, left out of the task's output


def loopline_rollout(step_json: str, params: dict) -> str:  # type: ignore[type-arg]
    "One acting look at the model's rollout (`loopline rollout evaluate --json`)."
    from loopline.backends.kfp.rollout import run_kfp_rollout
    return run_kfp_rollout(step_json, params)


# KFP ships the source above into the pod and reads its signature for the interface; it
# reads the string annotations `from __future__ import annotations` leaves as artifact types.
loopline_rollout.__annotations__ = {"step_json": str, "params": dict, "return": str}


def run_kfp_rollout(step_json: str, params: dict[str, Any]) -> str:
    """In the task: one acting look. Another controller acting (a `watch`, an Airflow DAG)
    is no failure: the look leaves it be and reports the recorded state."""
    from loopline.backends.base import check_fingerprint
    from loopline.pipeline.load import load_pipeline_with_values
    from loopline.runtime import rollout
    from loopline.runtime import rollout_state as rs
    from loopline.runtime.environment import applied

    info = json.loads(step_json)
    loaded = load_pipeline_with_values(Path(info["project_root"]) / info["spec"], params)
    check_fingerprint(loaded, info.get("fingerprint"))
    try:
        state = rollout.evaluate(loaded)  # in the step environment
    except rollout.ControllerBusy as exc:
        print(exc, flush=True)
        with applied(step_environment(loaded)):
            state = {**rs.read(rs.state_uri(loaded)), "busy": str(exc)}
    # The state without its history of looks (up to hundreds; rollout.json keeps them):
    # a KFP output parameter is stored in the run's metadata, which caps its size.
    text = json.dumps({k: v for k, v in state.items() if k not in LONG}, default=str)
    print(text, flush=True)
    return text


def rollout_pipeline_name(loaded: LoadedSpec) -> str:
    return f"{pipeline_name(loaded)}-rollout"


def interval_s(loaded: LoadedSpec) -> int:
    """KFP's periodic schedule counts whole seconds."""
    policy = loaded.spec.rollout
    if policy is None:
        raise ValueError(f"{loaded.display} has no `rollout:` block; add one (docs/rollout.md)")
    return max(1, math.ceil(policy.every_s))


def build_rollout_pipeline(loaded: LoadedSpec, image: str | None = None,
                           project_root: str | None = None) -> Any:
    """The pipeline function. `project_root`: where the project lives in the step image
    (default: here, which is what kfp-local needs)."""
    from kfp import dsl

    interval_s(loaded)  # refuses a spec without `rollout:`
    image = step_image(image)
    step_json = json.dumps({
        "project_root": project_root or str(loaded.project_root),
        "spec": os.path.relpath(loaded.path, loaded.project_root),
        "fingerprint": spec_fingerprint(loaded), "step": "rollout"})
    component = dsl.component(loopline_rollout, base_image=image)
    env = step_environment(loaded)

    def pipeline(params: dict = loaded.params.values) -> str:  # type: ignore[type-arg]
        task = component(step_json=step_json, params=params)
        task.set_display_name("rollout")
        task.set_caching_options(enable_caching=False)  # each look reads the log anew
        _environment(task, env)
        return task.output  # type: ignore[no-any-return]

    pipeline.__name__ = f"{loaded.spec.name}_rollout"
    pipeline.__annotations__ = {"params": dict, "return": str}
    return dsl.pipeline(name=rollout_pipeline_name(loaded),
                        description=f"One look at {loaded.spec.name}'s rollout")(pipeline)


def compile_rollout(loaded: LoadedSpec, out_path: Path, image: str | None = None,
                    project_root: str | None = None) -> Path:
    """KFP IR YAML of `<spec>-rollout` (`loopline compile kfp SPEC --rollout -o OUT`)."""
    from kfp import compiler

    out_path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_rollout_pipeline(loaded, image, project_root),
                                str(out_path))
    return out_path


def recurring_run(loaded: LoadedSpec, host: str, experiment: str | None = None,
                  image: str | None = None, project_root: str | None = "/app",
                  params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A KFP recurring run of `<spec>-rollout` every `rollout.every`, one at a time, no
    catch-up (`loopline submit kfp SPEC --rollout --host ...`). `params`: part of
    params.yaml for every look, as `submit --params` (`{"rollout": {"min_requests": 500}}`)."""
    # Not `kfp.Client`: inside a KFP task (_KFP_RUNTIME=true) the package skips that import.
    from kfp.client import Client

    client = Client(host=host, existing_token=os.environ.get("KF_PIPELINES_TOKEN"))
    experiment_name = experiment or loaded.spec.name
    every = interval_s(loaded)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_rollout(loaded, Path(tmp) / "rollout.yaml", image, project_root)
        exp = client.create_experiment(name=experiment_name)
        job = client.create_recurring_run(
            experiment_id=exp.experiment_id, job_name=rollout_pipeline_name(loaded),
            interval_second=every, pipeline_package_path=str(package), max_concurrency=1,
            no_catchup=True, enable_caching=False, params={"params": params} if params else {})
    return {"recurring_run_id": job.recurring_run_id, "experiment": experiment_name,
            "interval_s": every}
