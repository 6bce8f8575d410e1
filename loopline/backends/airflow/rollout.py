"""Airflow backend: a `<spec>_rollout` DAG for a spec with a `rollout:` block.

One sensor per weight step (`step_1_5pct`, `step_2_25pct`, ...) in a chain, then `outcome`.
Each sensor pokes with one acting look of the rollout controller (`runtime.rollout.evaluate`,
what `loopline rollout evaluate` does) every `rollout.every`, in `reschedule` mode: between
looks the task gives its worker slot back, so a rollout that takes hours holds no worker.
The controller keeps all state in `rollout.json`, so a run that fails or times out loses
nothing: the next run picks the rollout up at the recorded step.

A sensor succeeds once the rollout has moved past its step, or ended at it (promoted or
rolled back); it is skipped when the rollout ended before reaching it, or when there was no
rollout to watch (then the whole run is skipped). A rollback is a success of the run, as a
gate refusing a model is: `outcome` says what happened, and fails only if the rollout is
somehow still active.

The DAG runs when the training DAG's promote step emits the model's Asset event (a promote
with `strategy: canary` starts a rollout) and every 10 minutes, which picks up a rollout
started by hand (`loopline rollout start`). Parsing imports nothing heavy: the controller is
imported inside `poke`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseSensorOperator

from loopline.backends.airflow.assets import model_asset
from loopline.backends.airflow.task import failure_callback
from loopline.spec.load import LoadedSpec

EVERY = "*/10 * * * *"  # catches rollouts started by hand; the model Asset starts the rest
MARGIN_S = 600.0  # a step's sensor waits max_duration plus this (and 10 looks) at most


def dag_id(loaded: LoadedSpec) -> str:
    return f"{loaded.spec.name}_rollout"


def step_task_id(index: int, share: int) -> str:
    return f"step_{index + 1}_{share}pct"


def step_timeout_s(loaded: LoadedSpec) -> float:
    """A step ends by `max_duration` at the latest (the controller then advances or rolls
    back); the margin covers the look interval and a controller that is briefly busy. A
    rollout held for a person (`promote: manual`) outlives it: the sensor then fails, and
    the next run keeps watching."""
    policy = loaded.spec.rollout
    assert policy is not None
    return policy.max_duration_s + max(MARGIN_S, 10 * policy.every_s)


class RolloutStepSensor(BaseSensorOperator):
    """Waits for the rollout to move past (or end at) step `index`, acting at every look."""

    ui_color = "#d8ecf3"

    def __init__(self, *, spec_path: str, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.index = index

    def poke(self, context: Any) -> bool:
        from loopline.pipeline.load import load_pipeline
        from loopline.runtime import rollout

        loaded = load_pipeline(self.spec_path)
        try:
            state = rollout.evaluate(loaded)
        except rollout.ControllerBusy as exc:  # a `watch` or another run acts: follow it
            self.log.info("%s; reading the recorded state instead", exc)
            state = recorded(loaded)
        return reached(state, self.index, run_started(context), self.log.info)


def recorded(loaded: LoadedSpec) -> dict[str, Any]:
    """The rollout's state as last written, read as a step would (an object store's
    endpoint may come from the spec's `env:`)."""
    from loopline.runtime import rollout_state as rs
    from loopline.runtime.environment import applied, step_environment

    with applied(step_environment(loaded)):
        return rs.read(rs.state_uri(loaded))


def run_started(context: Any) -> datetime:
    run = context.get("dag_run")
    moment = getattr(run, "start_date", None) or getattr(run, "run_after", None)
    return (moment or datetime.now(UTC)).astimezone(UTC)


def reached(state: dict[str, Any], index: int, since: datetime,
            log: Any = print) -> bool:
    """Whether the sensor of step `index` is done with `state`; AirflowSkipException when
    the rollout never reached that step during this run (or there was none)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from loopline.runtime.rollout_state import ACTIVE

    status = state.get("status") or "idle"
    look = state.get("decision") or {}
    if status in ACTIVE:
        if state["step"] > index:
            log(f"rollout {state['id']}: past this step (now {state['weight']}% on "
                f"v{state['challenger']})")
            return True
        log(f"rollout {state['id']}: {status} at {state['weight']}% on v{state['challenger']}: "
            f"{look.get('action', '-')}: {look.get('reason', 'no look by this controller')}")
        return False
    ended = state.get("ended_at")
    if not ended or datetime.fromisoformat(ended) < since:
        raise AirflowSkipException(
            f"no rollout running ({status}"
            + (f"; the last, {state.get('id')}, ended {ended}" if ended else "")
            + "): nothing to watch. A promote with strategy: canary or `loopline rollout "
              "start` begins one")
    if state["step"] < index:
        raise AirflowSkipException(
            f"rollout {state['id']} {status.replace('_', ' ')} at step {state['step'] + 1} "
            f"before reaching this one: {state.get('reason')}")
    log(f"rollout {state['id']}: {status.replace('_', ' ')} at {state['steps'][state['step']]}%"
        f": {state.get('reason')}")
    return True


def outcome(spec_path: str) -> dict[str, Any]:
    """Say how the rollout ended; fail while it is still active (the next run resumes it)."""
    from airflow.sdk.exceptions import AirflowFailException

    from loopline.pipeline.load import load_pipeline
    from loopline.runtime import rollout_state as rs

    state = recorded(load_pipeline(spec_path))
    status = state.get("status") or "idle"
    summary = {k: state.get(k) for k in ("id", "status", "challenger", "champion", "step",
                                         "weight", "reason", "ended_at")}
    if status in rs.ACTIVE:
        raise AirflowFailException(f"rollout {state.get('id')} is still {status} at "
                                   f"{state.get('weight')}%; the next run keeps watching it")
    print(f"rollout {state.get('id')}: v{state.get('challenger')} {status.replace('_', ' ')} "
          f"(champion before: v{state.get('champion')}): {state.get('reason')}", flush=True)
    return summary


def rollout_dag(loaded: LoadedSpec, start_date: datetime, mode: str = "reschedule") -> DAG:
    """`mode`: "reschedule" (no worker held between looks); "poke" only for tests."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    spec, policy = loaded.spec, loaded.spec.rollout
    assert policy is not None and spec.registry is not None  # the spec model requires both
    spec_path = str(loaded.path)
    schedule = AssetOrTimeSchedule(timetable=CronTriggerTimetable(EVERY, timezone="UTC"),
                                   assets=model_asset(spec.registry.model_name))  # type: ignore[arg-type]
    with DAG(dag_id=dag_id(loaded), schedule=schedule, start_date=start_date, catchup=False,
             max_active_runs=1,  # one watcher per model; the controller lock backs it up
             tags=["loopline", "rollout"],
             doc_md=f"{policy.mode} rollout of `{spec.registry.model_name}`: steps "
                    f"{policy.steps}, a look every {policy.every}.\n\nSpec: "
                    f"`{loaded.display}`") as dag:
        steps = [RolloutStepSensor(
            task_id=step_task_id(i, share), spec_path=spec_path, index=i, mode=mode,
            poke_interval=policy.every_s, timeout=timedelta(seconds=step_timeout_s(loaded)),
            on_failure_callback=failure_callback(spec_path),
            doc_md=f"{share}% of traffic on the challenger until it moves on or ends")
            for i, share in enumerate(policy.steps)]
        end = PythonOperator(task_id="outcome", python_callable=outcome,
                             op_kwargs={"spec_path": spec_path},
                             trigger_rule="none_failed_min_one_success",
                             on_failure_callback=failure_callback(spec_path))
        for before, after in itertools.pairwise(steps):
            before >> after
        for step in steps:  # runs when some step was reached; skipped with no rollout
            step >> end
    return dag
