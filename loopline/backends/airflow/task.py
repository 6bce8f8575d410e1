"""What an Airflow task executes: the same `execute_step` as `loopline run`.

Kept apart from the DAG builder so that parsing DAGs never imports this module's work, and
small enough that `external_python` can call it in another interpreter.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


def run_step(spec_path: str, step: str, run_id: str, params_json: str = "{}",
             **context: Any) -> dict[str, Any]:
    """Run one step for an Airflow task; raise on failure so Airflow retries it, except for
    the step's own verdict (bad data, a failed gate): that fails the task without retries."""
    from loopline.pipeline.load import load_pipeline_with_values
    from loopline.runtime.context import Run
    from loopline.runtime.environment import applied, step_environment
    from loopline.runtime.executor import StepVerdict, execute_single_step, own_retries
    from loopline.runtime.hooks import ConsoleProgress
    from loopline.spec.params import values_from_json

    loaded = load_pipeline_with_values(spec_path, values_from_json(params_json or "{}", "params"))
    try:  # Airflow owns retries, so Loopline's own retry loop is off inside a task
        with applied(step_environment(loaded)):  # a Celery worker: as a pod would get it
            run = Run.for_orchestrator(loaded, "airflow", run_id,
                                       hooks=ConsoleProgress(sys.stdout))
            outcome = execute_single_step(run, step, retries=own_retries("airflow"),
                                          raise_on_failure=True)
    except StepVerdict as exc:
        try:  # `external_python` runs this in an interpreter that may lack Airflow
            from airflow.sdk.exceptions import AirflowFailException
        except ImportError:
            raise exc from None
        raise AirflowFailException(str(exc)) from exc
    model = outcome.facts.get("model")
    if model and "outlet_events" in context:  # the model Asset's event says what happened
        from loopline.backends.airflow.assets import model_asset

        context["outlet_events"][model_asset(model["name"])].extra = {
            "version": model["version"], "aliases": model["aliases"],
            "promoted": "champion" in model["aliases"], "run_id": run.run_id}
    return {"status": outcome.status, "outputs": outcome.outputs, "metrics": outcome.metrics,
            **outcome.facts}


def external_step(spec_path: str, step: str, run_id: str, params_json: str) -> dict:  # type: ignore[type-arg]
    """Shipped as source to `@task.external_python`: imports happen in that interpreter."""
    from loopline.backends.airflow.task import run_step

    return run_step(spec_path, step, run_id, params_json)


def retrain_trigger(spec_path: str, run_id: str, target: str, params_json: str = "{}",
                    **context: Any) -> dict[str, Any]:
    """The drift DAG's last task: on `retrain`, record the trigger and emit the Asset event
    the training DAG is scheduled on; otherwise skip (a skipped task emits no event)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from loopline.backends.airflow.assets import retrain_asset
    from loopline.pipeline.load import load_pipeline_with_values
    from loopline.runtime import retrain
    from loopline.runtime.environment import applied, step_environment
    from loopline.spec.params import values_from_json

    loaded = load_pipeline_with_values(spec_path, values_from_json(params_json or "{}", "params"))
    with applied(step_environment(loaded)):  # it reads and writes the registry
        summary = retrain.drift_summary(loaded)
        trigger = retrain.decide(loaded, summary, "airflow", run_id)
        if not trigger.retrain:
            raise AirflowSkipException(f"no retraining: {trigger.suppressed or trigger.reason}")
        event = retrain.record(loaded, trigger, dag=target)
    if "outlet_events" in context:
        context["outlet_events"][retrain_asset(target)].extra = {
            k: event.get(k) for k in ("reason", "key", "champion", "drift_pipeline", "run")}
    print(f"retraining {target}: {trigger.reason}")
    return trigger.to_json()


def failure_callback(spec_path: str) -> Callable[[Any], None]:
    """Each task's `on_failure_callback` (cheap to build while a DAG file is parsed)."""
    return functools.partial(alert_failure, spec_path)


def alert_failure(spec_path: str, context: Any) -> None:
    """After Airflow's last try (retries exhausted, a verdict, a timeout, a killed pod):
    `step.failed` through the spec's alert routes. The executor leaves step failures on
    Airflow to this callback, so a try that Airflow retries never pages anyone."""
    try:
        import json

        from loopline.pipeline.load import load_pipeline_with_values
        from loopline.runtime import alerting
        from loopline.spec.params import values_from_json

        params = context.get("params") or {}
        values = json.dumps({key: params[key] for key in params}, default=str)
        loaded = load_pipeline_with_values(spec_path, values_from_json(values, "params"))
        ti = context.get("ti") or context.get("task_instance")
        error = context.get("exception")
        alerting.emit(loaded, alerting.step_failed(
            loaded, ti.task_id, f"{type(error).__name__}: {error}" if error else "failed",
            str(context.get("run_id")), "airflow", try_number=getattr(ti, "try_number", None)))
    except Exception as exc:  # noqa: BLE001 - a callback never fails what called it
        print(f"alert: step.failed not sent: {type(exc).__name__}: {exc}", file=sys.stderr)
