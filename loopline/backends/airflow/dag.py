"""Airflow backend: one DAG per spec, one task per step, each task calling `execute_step`.

Parsing stays light (no pandas, no ML library): specs are validated with the same loader as
`loopline validate-spec`, and tasks point at `loopline.backends.airflow.task`, imported only
when a task runs. A broken spec never takes the other DAGs down: it becomes a placeholder DAG
whose validation fails, which Airflow records as one import error naming the spec file, the
line and the problem.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param

from loopline.backends.airflow.assets import retrain_asset, step_assets
from loopline.backends.airflow.rollout import dag_id as rollout_dag_id
from loopline.backends.airflow.rollout import rollout_dag
from loopline.backends.airflow.task import failure_callback
from loopline.backends.base import step_fingerprint
from loopline.backends.kubernetes import pod_env, pod_resources, step_command, step_image
from loopline.pipeline.load import load_pipeline
from loopline.runtime.context import ORCHESTRATOR_RUN_ENV
from loopline.runtime.environment import step_environment
from loopline.spec import graph
from loopline.spec.errors import SpecError
from loopline.spec.load import LoadedSpec

START = datetime(2024, 1, 1)
GPU_QUEUE = os.environ.get("LOOPLINE_AIRFLOW_GPU_QUEUE", "gpu")


class InvalidSpecs(ValueError):
    """Raised at DAG validation for specs that do not load; the text is the problems."""


class _InvalidSpecDag(DAG):  # type: ignore[misc]
    """Stands in for broken specs so Airflow reports them as an import error of this file."""

    problems: str = ""

    def validate(self) -> None:
        raise InvalidSpecs(self.problems)


def _param(section: str, value: Any) -> Param:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "object"}
    kind = next((k for t, k in kinds.items() if type(value) is t), "string")
    return Param(value, type=[kind, "null"] if value is None else kind,
                 description=f"params.yaml `{section}`: edit a value to override it for this "
                             "run (like `loopline run --set`)")


def _dag_params(loaded: LoadedSpec) -> dict[str, Param]:
    """One trigger-form field per params.yaml section, prefilled with the file's values.

    Per section rather than per leaf: Airflow validates every Param with jsonschema each
    time it parses the file, and a field per leaf cost ~0.7 s across 100 specs.
    """
    return {section: _param(section, value) for section, value in loaded.params.values.items()}


def _schedule(loaded: LoadedSpec, drift_triggered: bool) -> Any:
    schedule = loaded.spec.schedule
    if not drift_triggered:
        return schedule
    asset = retrain_asset(loaded.spec.name)
    if schedule is None:
        return asset
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(schedule, timezone="UTC"),
                               assets=asset)


def _retrain_operator(loaded: LoadedSpec, spec_path: str, target: str) -> Any:
    """After the drift step: emit the retrain Asset event, or skip (no drift, cooldown)."""
    from airflow.providers.standard.operators.python import PythonOperator

    from loopline.backends.airflow.task import retrain_trigger

    return PythonOperator(
        task_id="retrain", python_callable=retrain_trigger, outlets=[retrain_asset(target)],
        op_kwargs={"spec_path": spec_path, "run_id": "{{ run_id }}",
                   "params_json": "{{ params | tojson }}", "target": target},
        on_failure_callback=failure_callback(spec_path),
        doc_md=f"Starts `{target}` when the drift summary says retrain (skipped otherwise).")


def _operator(loaded: LoadedSpec, step: str, spec_path: str) -> Any:
    spec = loaded.spec
    resources = spec.resources(step)
    isolation = spec.isolation(step)
    timeout = spec.timeout_s(step)
    gpu = resources.gpu.count if resources.gpu else 0
    common: dict[str, Any] = {
        "task_id": step,
        "retries": spec.retries(step),
        "retry_delay": timedelta(seconds=spec.retry_delay_s(step)),
        "execution_timeout": timedelta(seconds=timeout) if timeout else None,
        "outlets": step_assets(loaded, step),
        "doc_md": spec.steps[step].description or f"`{spec.steps[step].component}`",
        "on_failure_callback": failure_callback(spec_path),  # step.failed alerts
    }
    if gpu:
        common["queue"] = GPU_QUEUE  # Celery: only workers on GPU machines listen here
    common["pool_slots"] = max(1, math.ceil(resources.cpu_cores()))  # 2 CPUs, 2 pool slots
    templated = {"spec_path": spec_path, "step": step, "run_id": "{{ run_id }}",
                 "params_json": "{{ params | tojson }}"}
    if isolation.mode == "kubernetes":
        return _pod_operator(loaded, step, spec_path, isolation, resources, common)
    if isolation.mode == "external_python":
        from airflow.providers.standard.operators.python import ExternalPythonOperator

        from loopline.backends.airflow.task import external_step

        python = isolation.python or os.environ.get("LOOPLINE_EXTERNAL_PYTHON")
        if not python:
            raise SpecError([loaded.doc.problem(
                ("steps", step, "isolation", "python"),
                "external_python needs isolation.python or $LOOPLINE_EXTERNAL_PYTHON")])
        return ExternalPythonOperator(python=python, python_callable=external_step,
                                      op_kwargs=templated, expect_airflow=False, **common)
    from airflow.providers.standard.operators.python import PythonOperator

    from loopline.backends.airflow.task import run_step

    return PythonOperator(python_callable=run_step, op_kwargs=templated, **common)


def _pod_operator(loaded: LoadedSpec, step: str, spec_path: str, isolation: Any,
                  resources: Any, common: dict[str, Any]) -> Any:
    """A pod per step with the spec's requests (GPUs as `nvidia.com/gpu` limits) and the
    step environment: `env:` as values, `secrets:` as secret references, never values."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    pod = pod_resources(resources)
    relative = os.path.relpath(spec_path, loaded.project_root)
    common.pop("pool_slots", None)
    env = pod_env(step_environment(loaded), {ORCHESTRATOR_RUN_ENV: "{{ run_id }}",
                                             "LOOPLINE_PARAMS_JSON": "{{ params | tojson }}"})
    return KubernetesPodOperator(
        name=f"{loaded.spec.name}-{step}".replace("_", "-"),
        image=step_image(isolation.image),
        namespace=isolation.namespace,
        cmds=step_command(relative, step, "airflow", step_fingerprint(loaded, step)),
        env_vars=[k8s.V1EnvVar(name=e["name"], value=e.get("value"), value_from=(
            k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(
                name=e["valueFrom"]["secretKeyRef"]["name"],
                key=e["valueFrom"]["secretKeyRef"]["key"],
                optional=e["valueFrom"]["secretKeyRef"].get("optional")))
                                 if "valueFrom" in e else None))
            for e in env],
        container_resources=k8s.V1ResourceRequirements(requests=pod.requests or None,
                                                       limits=pod.limits or None),
        node_selector=pod.node_selector or None, get_logs=True, on_finish_action="delete_pod",
        **common)


def build_dag(loaded: LoadedSpec, drift_triggered: bool = False,
              retrain_target: str | None = None) -> DAG:
    """`drift_triggered`: a drift spec retrains this one; `retrain_target`: this drift spec's
    training pipeline (its DAG id)."""
    spec = loaded.spec
    spec_path = str(loaded.path)
    with DAG(dag_id=spec.name, schedule=_schedule(loaded, drift_triggered), start_date=START,
             catchup=False,
             max_active_runs=1,  # steps share artifact paths; one run of a pipeline at a time
             params=_dag_params(loaded), tags=["loopline"],
             doc_md=f"{spec.description}\n\nSpec: `{loaded.display}`") as dag:
        tasks = {step: _operator(loaded, step, spec_path)
                 for step in graph.topological_order(spec)}
        for step, task in tasks.items():
            for upstream in graph.upstream(spec, step):
                tasks[upstream] >> task
        if spec.retrain is not None and retrain_target is not None:
            tasks[spec.retrain.step] >> _retrain_operator(loaded, spec_path, retrain_target)
    return dag


def build_dags(pipelines_dir: str | Path) -> dict[str, DAG]:
    """One DAG per `*.yaml` spec (and `<name>_rollout` for a spec with a `rollout:` block);
    broken specs gathered into one failing placeholder."""
    dags: dict[str, DAG] = {}
    problems: list[str] = []
    specs: dict[Path, LoadedSpec] = {}
    for path in sorted(Path(pipelines_dir).glob("*.y*ml")):
        try:
            specs[path.resolve()] = load_pipeline(path)
        except SpecError as exc:
            problems += [str(problem) for problem in exc.problems]
        except Exception as exc:  # noqa: BLE001 - one broken spec never takes the others down
            problems.append(f"{path}:1: <root>: could not be loaded: "
                            f"{type(exc).__name__}: {exc}".splitlines()[0])
    targets: dict[str, str] = {}  # drift spec -> the training DAG it starts
    for loaded in specs.values():
        if loaded.spec.retrain is not None:
            target = (loaded.project_root / loaded.spec.retrain.pipeline).resolve()
            if target in specs:
                targets[loaded.spec.name] = specs[target].spec.name
            else:
                problems.append(str(loaded.doc.problem(
                    ("retrain", "pipeline"), f"{loaded.spec.retrain.pipeline} is not among "
                    f"the specs in {pipelines_dir}, so no DAG could run it")))
    for loaded in specs.values():
        try:
            dags[loaded.spec.name] = build_dag(
                loaded, drift_triggered=loaded.spec.name in targets.values(),
                retrain_target=targets.get(loaded.spec.name))
            if loaded.spec.rollout is not None:  # its own DAG: sensors, one per step
                dags[rollout_dag_id(loaded)] = rollout_dag(loaded, START)
        except SpecError as exc:
            problems += [str(problem) for problem in exc.problems]
    if problems:
        placeholder = _InvalidSpecDag(dag_id="loopline_invalid_specs", schedule=None,
                                      start_date=START)
        placeholder.problems = "\n".join(problems)
        dags[placeholder.dag_id] = placeholder
    return dags
