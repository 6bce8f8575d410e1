"""Kubeflow Pipelines backend: a spec compiles to KFP v2 IR.

One task per step, wired through KFP artifacts; one pipeline parameter `params` holding
params.yaml (a run may pass part of it: `{"train": {"max_iter": 300}}`); resources, retries,
caching and the image set per task; secrets only as Kubernetes secret references.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loopline.backends.base import Compiler, spec_fingerprint
from loopline.backends.kfp.components import kfp_component, retrain_component
from loopline.backends.kubernetes import GPU_RESOURCE, pod_resources, step_image
from loopline.components import registry
from loopline.runtime.environment import StepEnvironment, step_environment
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
    from kfp import dsl

    from loopline.spec.errors import SpecError

    spec = loaded.spec
    plugins = [name for name, step in spec.steps.items() if step.component not in registry.BUILTINS]
    if plugins:  # a plugin's code is not in the step image's component YAMLs (yet)
        raise SpecError([loaded.doc.problem(
            ("steps", name, "component"), f"{spec.steps[name].component}: only built-in "
            "components compile to KFP for now (run it locally, with DVC or on Airflow)")
            for name in plugins])
    image = step_image(image)
    root = project_root or str(loaded.project_root)
    spec_rel = os.path.relpath(loaded.path, loaded.project_root)
    defaults = loaded.params.values
    env = step_environment(loaded)
    spec_location = {"project_root": root, "spec": spec_rel,
                     "fingerprint": spec_fingerprint(loaded)}

    def pipeline(params: dict = defaults) -> None:  # type: ignore[assignment,type-arg]
        tasks: dict[str, Any] = {}
        for step in graph.topological_order(spec):
            step_spec = spec.steps[step]
            isolation = spec.isolation(step)
            component = kfp_component(step_spec.component, isolation.image or image)
            kwargs: dict[str, Any] = {
                "step_json": json.dumps({**spec_location, "step": step}),
                "params": params, "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
            for name, ref in step_spec.input_refs().items():
                kwargs[f"in_{name}"] = tasks[ref.step].outputs[f"out_{ref.output}"]
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
            _environment(task, env)
            tasks[step] = task
        if spec.retrain is not None:
            retrain = _retrain_task(spec.retrain.step, tasks, image, params,
                                    json.dumps({**spec_location, "image": image}))
            _environment(retrain, env)

    pipeline.__name__ = spec.name
    # Real types, not the strings `from __future__ import annotations` leaves: KFP reads a
    # string annotation as an artifact type.
    pipeline.__annotations__ = {"params": dict, "return": None}
    return dsl.pipeline(name=pipeline_name(loaded), description=spec.description or None)(
        pipeline)


def _retrain_task(step: str, tasks: dict[str, Any], image: str, params: Any,
                  step_json: str) -> Any:
    """After the drift step: submit the training pipeline when its summary says retrain."""
    from kfp import dsl

    task = retrain_component(image)(step_json=step_json, params=params,
                                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                    in_summary=tasks[step].outputs["out_summary"])
    task.set_display_name("retrain")
    task.set_caching_options(enable_caching=False)  # the decision depends on the registry now
    if host := os.environ.get("LOOPLINE_KFP_HOST"):
        task.set_env_variable("LOOPLINE_KFP_HOST", host)
    return task


def _environment(task: Any, env: StepEnvironment) -> None:
    """The step environment (runtime.environment), in KFP's task API: values as env
    variables, secrets as Kubernetes secret references (kfp-kubernetes)."""
    from kfp import kubernetes

    for name, value in env.values.items():
        task.set_env_variable(name, value)
    for name, ref in env.secrets.items():
        kubernetes.use_secret_as_env(task, secret_name=ref.secret,
                                     secret_key_to_env={ref.key: name},
                                     optional=ref.optional)


def _resources(task: Any, resources: Any) -> None:
    """The shared Kubernetes translation (backends.kubernetes), in KFP's task API."""
    from kfp import kubernetes

    pod = pod_resources(resources)
    if "cpu" in pod.requests:
        task.set_cpu_request(pod.requests["cpu"])
    if "memory" in pod.limits:
        memory = _memory(pod.limits["memory"])
        task.set_memory_request(memory).set_memory_limit(memory)
    if pod.gpus:
        task.set_accelerator_type(GPU_RESOURCE)
        task.set_accelerator_limit(pod.gpus)
    for label, value in pod.node_selector.items():
        kubernetes.add_node_selector(task, label_key=label, label_value=value)


class KfpCompiler(Compiler):
    name = "kfp"

    def compile(self, loaded: LoadedSpec, output: Path, image: str | None = None,
                project_root: str | None = None) -> Path:
        from kfp import compiler

        output.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(build_pipeline(loaded, image, project_root), str(output))
        return output
