"""Kubeflow Pipelines backend: a spec compiles to KFP v2 IR; `kfp-local` runs it in-process.

One task per step, wired through KFP artifacts; one pipeline parameter `params` holding
params.yaml (a run may pass part of it: `{"train": {"max_iter": 300}}`); resources, retries,
caching and the image set per task; secrets only as Kubernetes secret references.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from loopline.backends.base import Compiler, Runner
from loopline.backends.kfp_components import DEFAULT_IMAGE, kfp_component, retrain_component
from loopline.components import registry
from loopline.spec import graph
from loopline.spec.load import LoadedSpec


def pipeline_name(loaded: LoadedSpec) -> str:
    return loaded.spec.name.replace("_", "-")


def _memory(quantity: str) -> str:
    """KFP takes E/P/T/G/M/K or Ei/Pi/Ti/Gi/Mi/Ki suffixes; 'k' is Kubernetes' only lowercase."""
    return quantity[:-1] + "K" if quantity.endswith("k") else quantity


def build_pipeline(loaded: LoadedSpec, image: str | None = None,
                   project_root: str | None = None) -> Any:
    """The KFP pipeline function. `project_root`: where the project lives in the step image
    (default: here, which is what kfp-local needs)."""
    from kfp import dsl, kubernetes

    spec = loaded.spec
    image = image or os.environ.get("LOOPLINE_STEP_IMAGE", DEFAULT_IMAGE)
    root = project_root or str(loaded.project_root)
    spec_rel = os.path.relpath(loaded.path, loaded.project_root)
    defaults = loaded.params.values

    def pipeline(params: dict = defaults) -> None:  # type: ignore[assignment,type-arg]
        tasks: dict[str, Any] = {}
        for step in graph.topological_order(spec):
            step_spec = spec.steps[step]
            isolation = spec.isolation(step)
            component = kfp_component(step_spec.component, isolation.image or image)
            kwargs: dict[str, Any] = {
                "step_json": json.dumps({"project_root": root, "spec": spec_rel, "step": step}),
                "params": params, "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
            for name, ref in step_spec.inputs.items():
                upstream, output = ref.split(".")
                kwargs[f"in_{name}"] = tasks[upstream].outputs[f"out_{output}"]
            task = component(**kwargs)
            task.set_display_name(step)
            for dependency in step_spec.after:
                task.after(tasks[dependency])
            _resources(task, spec.resources(step))
            retries = spec.retries(step)
            if retries:
                task.set_retry(num_retries=retries,
                               backoff_duration=f"{int(spec.retry_delay_s(step))}s")
            task.set_caching_options(enable_caching=step_spec.cache
                                     and not registry.get(step_spec.component).touches_registry)
            for env, ref in spec.secrets.items():
                kubernetes.use_secret_as_env(task, secret_name=ref.secret,
                                             secret_key_to_env={ref.key: env})
            tasks[step] = task
        if spec.retrain is not None:
            _retrain_task(spec.retrain.step, tasks, image, params,
                          json.dumps({"project_root": root, "spec": spec_rel, "image": image}))

    pipeline.__name__ = spec.name
    # Real types, not the strings `from __future__ import annotations` leaves: KFP reads a
    # string annotation as an artifact type.
    pipeline.__annotations__ = {"params": dict, "return": None}
    return dsl.pipeline(name=pipeline_name(loaded), description=spec.description or None)(
        pipeline)


def _retrain_task(step: str, tasks: dict[str, Any], image: str, params: Any,
                  step_json: str) -> None:
    """After the drift step: submit the training pipeline when its summary says retrain."""
    from kfp import dsl

    task = retrain_component(image)(step_json=step_json, params=params,
                                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                    in_summary=tasks[step].outputs["out_summary"])
    task.set_display_name("retrain")
    task.set_caching_options(enable_caching=False)  # the decision depends on the registry now
    if host := os.environ.get("LOOPLINE_KFP_HOST"):
        task.set_env_variable("LOOPLINE_KFP_HOST", host)


def _resources(task: Any, resources: Any) -> None:
    if resources.cpu:
        task.set_cpu_request(str(resources.cpu)).set_cpu_limit(str(resources.cpu))
    if resources.memory:
        memory = _memory(resources.memory)
        task.set_memory_request(memory).set_memory_limit(memory)
    if resources.gpu and resources.gpu.count:
        task.set_accelerator_type(resources.gpu.type or "nvidia.com/gpu")
        task.set_accelerator_limit(resources.gpu.count)


class KfpCompiler(Compiler):
    name = "kfp"

    def compile(self, loaded: LoadedSpec, output: Path, image: str | None = None,
                project_root: str | None = None) -> Path:
        from kfp import compiler

        output.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(build_pipeline(loaded, image, project_root), str(output))
        return output


class KfpLocalRunner(Runner):
    """kfp's SubprocessRunner in this interpreter: the compiled graph, run on this machine."""

    name = "kfp-local"

    def run(self, loaded: LoadedSpec, *, params: dict[str, Any] | None = None,
            **_: Any) -> dict[str, Any]:
        import kfp.local

        root = loaded.project_root / ".loopline" / "kfp-local"
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
        pipeline = build_pipeline(loaded)
        started = time.perf_counter()
        status, error = "succeeded", None
        try:
            pipeline(**({"params": params} if params else {}))
        except Exception as exc:  # noqa: BLE001 - kfp raises RuntimeError for a failed task
            status, error = "failed", str(exc)
        return _summary(loaded, root, status, error, time.perf_counter() - started)


def task_names(loaded: LoadedSpec) -> dict[str, str]:
    """Step -> KFP task name (derived from the component; kfp-local names folders by it),
    read back from the compiled IR where each task's display name is its step."""
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = KfpCompiler().compile(loaded, Path(tmp) / "pipeline.yaml")
        ir = next(yaml.safe_load_all(path.read_text()))
    return {task["taskInfo"]["name"]: name for name, task in ir["root"]["dag"]["tasks"].items()}


def _summary(loaded: LoadedSpec, root: Path, status: str, error: str | None,
             seconds: float) -> dict[str, Any]:
    """The `loopline run --json` shape, read from the newest local pipeline run's outputs."""
    runs = sorted(root.glob(f"{pipeline_name(loaded)}-*"), key=lambda p: p.stat().st_mtime)
    steps: dict[str, Any] = {}
    gate = model = None
    names = task_names(loaded)
    for step in graph.topological_order(loaded.spec):
        component = registry.get(loaded.spec.steps[step].component)
        folder = runs[-1] / names[step] if runs else None
        outputs = {n: folder / f"out_{n}" for n in component.outputs} if folder else {}
        if not outputs or not all(path.exists() for path in outputs.values()):
            steps[step] = {"status": "failed" if status == "failed" else "skipped"}
            continue
        steps[step] = {"status": "succeeded", "outputs": {n: str(p) for n, p in outputs.items()},
                       "metrics": {}}
        if "metrics" in outputs and outputs["metrics"].is_file():
            steps[step]["metrics"] = json.loads(outputs["metrics"].read_text())
        if "verdict" in outputs:
            verdict = json.loads(outputs["verdict"].read_text())
            gate = {"passed": verdict["passed"], "checks": verdict["checks"]}
        if "registered" in outputs:
            registered = json.loads(outputs["registered"].read_text())
            model = {k: registered[k] for k in ("name", "version", "aliases")}
    return {"run_id": runs[-1].name if runs else None, "status": status, "steps": steps,
            "gate": gate, "model": model, "duration_s": round(seconds, 3),
            **({"error": error} if error else {})}
