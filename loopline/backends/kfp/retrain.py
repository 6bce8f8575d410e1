"""What a drift pipeline's `retrain` task executes on Kubeflow: decide, then submit.

The decision is the one every backend shares (`runtime.retrain`); the action is the
`loopline submit kfp` command itself, aimed at the cluster's KFP API from inside it. It runs
as a child process because the KFP runtime (_KFP_RUNTIME=true) imports a kfp too partial to
compile a pipeline in the task's own interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The KFP API as seen from a pod in a standard Kubeflow install.
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


def run_kfp_retrain(step_json: str, params: dict[str, Any], run_id: str,
                    summary_path: str) -> dict[str, Any]:
    from loopline.backends.base import check_fingerprint
    from loopline.pipeline.load import load_pipeline_with_values
    from loopline.runtime import retrain
    from loopline.runtime.environment import applied, step_environment

    info = json.loads(step_json)
    loaded = load_pipeline_with_values(Path(info["project_root"]) / info["spec"], params)
    check_fingerprint(loaded, info.get("fingerprint"))
    summary = json.loads(Path(summary_path).read_text())
    with applied(step_environment(loaded)):  # it reads and writes the registry
        trigger = retrain.decide(loaded, summary, "kfp", run_id)
        if not trigger.retrain:
            print(f"no retraining: {trigger.suppressed or trigger.reason}")
            return trigger.to_json()
        host = os.environ.get("LOOPLINE_KFP_HOST", IN_CLUSTER_HOST)
        submitted = submit_training(retrain.training_spec(loaded), host, info, params)
        retrain.record(loaded, trigger, kfp_run=submitted.get("run_id"), host=host)
    print(f"retraining: KFP run {submitted.get('run_id')} ({trigger.reason})")
    return {**trigger.to_json(), **submitted}


def submit_training(spec: Path, host: str, info: dict[str, Any],
                    params: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, "-m", "loopline", "submit", "kfp", str(spec), "--host", host,
               "--project-root", info["project_root"], "--params", json.dumps(params)]
    if info.get("image"):
        command += ["--image", info["image"]]
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"loopline submit kfp failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
