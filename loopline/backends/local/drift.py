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
    retrain.record(loaded, trigger)
    training = load_pipeline(retrain.training_spec(loaded), overrides)
    run = LocalRunner().run(training)
    result["retraining"] = {k: run.get(k) for k in ("run_id", "status", "gate", "model",
                                                   "duration_s")}
    if run["status"] != "succeeded":
        result["status"] = "failed"
        failed = [f"{step}: {o.get('error')}" for step, o in run.get("steps", {}).items()
                  if o.get("status") == "failed"]
        result["retraining"]["error"] = "; ".join(failed) or "the training run failed"
        retrain.record_failure(loaded, trigger, run["run_id"], result["retraining"]["error"])
    return result
