"""What a KFP task executes: the same `execute_step` as `loopline run`.

A task gets its inputs as KFP artifacts. It seeds a private artifact store with them (each
artifact's metadata carries the content hash its producer computed, so cache keys and lineage
match a local run), runs the step, then copies the outputs to its KFP output artifacts, whose
metadata carry the step's outcome (metrics, facts) for whoever reads the run back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

OUTCOME_KEY = "loopline_outcome"


def run_kfp_step(step_json: str, params: dict[str, Any], run_id: str,
                 inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
    from loopline.backends.base import check_fingerprint
    from loopline.components import registry
    from loopline.pipeline.load import load_pipeline_with_values
    from loopline.runtime.context import Run
    from loopline.runtime.environment import applied, step_environment
    from loopline.runtime.executor import execute_single_step, own_retries
    from loopline.runtime.store import ArtifactStore

    info = json.loads(step_json)
    loaded = load_pipeline_with_values(Path(info["project_root"]) / info["spec"], params)
    check_fingerprint(loaded, info.get("fingerprint"))
    spec, step = loaded.spec, info["step"]
    with tempfile.TemporaryDirectory(prefix="loopline-kfp-") as tmp:
        store = ArtifactStore(Path(tmp))
        upstream_files: dict[str, dict[str, tuple[Path, str, str | None]]] = {}
        data_hashes: dict[str, dict[str, str]] = {}
        for name, ref in spec.steps[step].input_refs().items():
            artifact = inputs.get(name)
            if artifact is None:
                continue
            filename = registry.get(spec.steps[ref.step].component).outputs[ref.output].filename
            upstream_files.setdefault(ref.step, {})[ref.output] = (
                Path(artifact.path), filename, artifact.metadata.get("hash"))
            data_hashes.setdefault(ref.step, {}).update(artifact.metadata.get("data_hashes", {}))
        for upstream, files in upstream_files.items():
            store.adopt(spec.name, upstream, files, data_hashes[upstream])
        for dependency in spec.steps[step].after:  # KFP ran it, and it succeeded: a task
            if dependency not in upstream_files:  # never starts after a failed one
                store.adopt(spec.name, dependency, {}, {})
        with applied(step_environment(loaded)):  # kfp-local: as a cluster's pod gets it
            run = Run.for_orchestrator(loaded, "kfp", run_id, store=store)
            # KFP owns retries, so Loopline's own retry loop is off inside a task.
            outcome = execute_single_step(run, step, retries=own_retries("kfp"),
                                          raise_on_failure=True)
        manifest = store.read_manifest(spec.name, step) or {}
        summary = {"duration_s": outcome.duration_s, "metrics": outcome.metrics,
                   "facts": outcome.facts}
        for name, artifact in outputs.items():
            entry = manifest["outputs"][name]
            source = store.step_dir(spec.name, step) / entry["path"]
            Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, artifact.path, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, artifact.path)
            artifact.metadata.update({"hash": entry["hash"], "loopline_step": step,
                                      "data_hashes": manifest.get("data_hashes", {}),
                                      OUTCOME_KEY: json.loads(json.dumps(summary, default=str))})
            if type(artifact).__name__ == "Metrics":
                for key, value in outcome.metrics.items():
                    if isinstance(value, int | float):
                        artifact.log_metric(key, float(value))
