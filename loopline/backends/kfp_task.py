"""What a KFP task executes: the same `execute_step` as `loopline run`.

A task gets its inputs as KFP artifacts. It seeds a private artifact store with them (each
artifact's metadata carries the content hash its producer computed, so cache keys and lineage
match a local run), runs the step, then copies the outputs to its KFP output artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def run_kfp_step(step_json: str, params: dict[str, Any], run_id: str,
                 inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
    from loopline.components import registry
    from loopline.components.validation import load_pipeline_with_values
    from loopline.runtime.context import Run
    from loopline.runtime.executor import execute_single_step
    from loopline.runtime.hashing import path_md5
    from loopline.runtime.store import MANIFEST, ArtifactStore, write_atomic

    info = json.loads(step_json)
    spec_path = Path(info["project_root"]) / info["spec"]
    loaded = load_pipeline_with_values(spec_path, params)
    spec, step = loaded.spec, info["step"]
    with tempfile.TemporaryDirectory(prefix="loopline-kfp-") as tmp:
        store = ArtifactStore(Path(tmp))
        manifests: dict[str, dict[str, Any]] = {}
        for name, ref in spec.steps[step].inputs.items():
            artifact = inputs.get(name)
            if artifact is None:
                continue
            upstream, output = ref.split(".")
            filename = registry.get(spec.steps[upstream].component).outputs[output].filename
            target = store.step_dir(spec.name, upstream) / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(artifact.path, target)
            entry = manifests.setdefault(upstream, {"outputs": {}, "data_hashes": {}})
            entry["outputs"][output] = {
                "path": filename, "hash": artifact.metadata.get("hash") or path_md5(target),
                "size": target.stat().st_size if target.is_file() else None}
            entry["data_hashes"].update(artifact.metadata.get("data_hashes", {}))
        for upstream, manifest in manifests.items():
            write_atomic(store.step_dir(spec.name, upstream) / MANIFEST, json.dumps(manifest))
        run = Run(loaded, f"kfp-{run_id}", "kfp", orchestrator_run=run_id, store=store)
        # KFP owns retries, so Loopline's own retry loop is off inside a task.
        outcome = execute_single_step(run, step, retries=0, raise_on_failure=True)
        manifest = store.read_manifest(spec.name, step) or {}
        for name, artifact in outputs.items():
            entry = manifest["outputs"][name]
            source = store.step_dir(spec.name, step) / entry["path"]
            Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, artifact.path, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, artifact.path)
            artifact.metadata.update({"hash": entry["hash"], "loopline_step": step,
                                      "data_hashes": manifest.get("data_hashes", {})})
            if type(artifact).__name__ == "Metrics":
                for key, value in outcome.metrics.items():
                    if isinstance(value, int | float):
                        artifact.log_metric(key, float(value))
