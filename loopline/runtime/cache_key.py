"""What decides a step's outputs, resolved before it runs: its inputs and its cache key.

Cache key = component name + component code version + resolved params + content hashes of
its inputs and external sources (Hamilton's recipe), plus the registry URI for steps that
read or write the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.components import registry
from loopline.components.contract import Component
from loopline.pipeline.load import step_params
from loopline.runtime.context import Run
from loopline.runtime.hashing import stable_hash


class MissingInput(Exception):
    pass


@dataclass(frozen=True)
class StepPlan:
    """Everything that decides a step's outputs, resolved before running it."""

    component: Component
    params: Any
    key: str
    inputs: dict[str, Path]
    input_hashes: dict[str, str]
    data_hashes: dict[str, str]


def plan_step(run: Run, step: str) -> StepPlan:
    loaded, store = run.loaded, run.store
    spec_step = loaded.spec.steps[step]
    component = registry.get(spec_step.component)
    params = step_params(loaded, step)
    inputs: dict[str, Path] = {}
    input_hashes: dict[str, str] = {}
    data_hashes: dict[str, str] = {}
    for name, ref in spec_step.input_refs().items():
        upstream, output = ref.step, ref.output
        manifest = store.read_manifest(loaded.spec.name, upstream)
        if manifest is None or output not in manifest.get("outputs", {}):
            raise MissingInput(f"input {name!r} needs {ref}, which has no complete output; "
                               f"run step {upstream!r} first")
        entry = manifest["outputs"][output]
        inputs[name] = store.local_path(loaded.spec.name, upstream, entry["path"], entry["hash"])
        input_hashes[name] = entry["hash"]
        data_hashes.update(manifest.get("data_hashes", {}))
    for dependency in spec_step.after:
        if store.read_manifest(loaded.spec.name, dependency) is None:
            raise MissingInput(f"runs after {dependency!r}, which has no complete run (it "
                               f"failed or never ran); run step {dependency!r} first")
    sources = component.sources(params, loaded.project_root) if component.sources else []
    for source in sources:
        data_hashes[source] = run.sources.hash(source)  # a path, or an object-store URI
    run.sources.save()
    key_material: dict[str, Any] = {
        "component": component.name,
        "code_version": registry.code_version(spec_step.component),
        "params": params.model_dump(mode="json"),
        "inputs": input_hashes,
        "sources": {s: data_hashes[s] for s in sources},
    }
    if component.touches_registry or component.reads_registry:
        key_material["registry"] = run.registry_uri
    return StepPlan(component, params, stable_hash(key_material)[:24], inputs, input_hashes,
                    data_hashes)


