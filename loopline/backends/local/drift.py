"""`loopline drift`: the drift pipeline here, then (on drift) the training pipeline here.

The same decision as on Airflow and Kubeflow (`runtime.retrain`); only the action differs:
the local backend runs the training spec in this process, or prints the command on a dry run.
"""

from __future__ import annotations

import shlex
from typing import Any

from loopline.backends.local.runner import LocalRunner
from loopline.pipeline.load import load_pipeline
from loopline.runtime import retrain
from loopline.runtime.environment import applied, step_environment
from loopline.spec.load import LoadedSpec


def retrain_command(loaded: LoadedSpec, overrides: list[str]) -> str:
    assert loaded.spec.retrain is not None
    words = ["loopline", "run", loaded.spec.retrain.pipeline]
    for override in overrides:
        words += ["--set", override]
    return shlex.join(words)


def run_drift(loaded: LoadedSpec, overrides: list[str], dry_run: bool = False,
              force: bool = False) -> dict[str, Any]:
    """Drift summary + `trigger` (+ `retraining`, the training run's summary, when it ran)."""
    if loaded.spec.retrain is None:
        raise ValueError(f"{loaded.display} has no `retrain:` block naming the drift step "
                         "and the training pipeline it starts")
    drift_run = LocalRunner().run(loaded, force=force)
    if drift_run["status"] != "succeeded":
        return {"status": "failed", "run": drift_run}
    with applied(step_environment(loaded)):  # the decision reads and writes the registry
        return _decide_and_retrain(loaded, overrides, drift_run, dry_run)


def _decide_and_retrain(loaded: LoadedSpec, overrides: list[str], drift_run: dict[str, Any],
                        dry_run: bool) -> dict[str, Any]:
    summary = retrain.drift_summary(loaded)
    trigger = retrain.decide(loaded, summary, "local", drift_run["run_id"])
    result: dict[str, Any] = {"status": "succeeded", **summary,
                              "trigger": {**trigger.to_json(), "dry_run": dry_run,
                                          "command": retrain_command(loaded, overrides)}}
    if not trigger.retrain or dry_run:
        return result
    result["retraining"] = retrain_locally(loaded, trigger, overrides)
    if result["retraining"]["status"] != "succeeded":
        result["status"] = "failed"
    return result


def retrain_locally(loaded: LoadedSpec, trigger: retrain.Trigger,
                    overrides: list[str]) -> dict[str, Any]:
    """Act on a trigger in this process: record it, run the training spec, and record a
    failure so that the next evaluation may try again. Returns the training run's summary."""
    retrain.record(loaded, trigger)
    run = LocalRunner().run(load_pipeline(retrain.training_spec(loaded), overrides))
    training = {k: run.get(k) for k in ("run_id", "status", "gate", "model", "duration_s")}
    if run["status"] != "succeeded":
        failed = [f"{step}: {o.get('error')}" for step, o in run.get("steps", {}).items()
                  if o.get("status") == "failed"]
        training["error"] = "; ".join(failed) or "the training run failed"
        retrain.record_failure(loaded, trigger, run["run_id"], training["error"])
    return training
