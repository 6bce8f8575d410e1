"""Alert events from what the runtime already knows, sent through the spec's `alerts:` routes.

Where events are raised, one place each for every backend:
* `after_step`, called by the executor for every step (local, DVC, Airflow, KFP): a failed
  step, a failed gate, a drift verdict;
* `retrain.record`: a retraining trigger that was acted on (`retrain.started`);
* Airflow's `on_failure_callback` (backends.airflow.task): a task's final failure, after
  Airflow's own retries, so a try that Airflow retries never pages anyone;
* the model server's live checks: `monitor.breached` / `monitor.recovered`.
Sending, de-duplication and redaction are `integrations.alerts`; this module decides what to
say and where the shared state lives (`<artifacts root>/alerts/<model>/`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from loopline.integrations.alerts import Delivery, Event, dispatch, event
from loopline.spec.paths import location

if TYPE_CHECKING:
    from loopline.runtime.context import Run
    from loopline.spec.load import LoadedSpec

# Orchestrators that report a task's final failure through a callback of their own.
CALLBACK_ORCHESTRATORS = ("airflow",)
DRIFT_KINDS = {"alert": "drift.warn", "retrain": "drift.retrain"}


class _Outcome(Protocol):
    status: str
    facts: dict[str, Any]
    error: str | None


def model_name(loaded: LoadedSpec) -> str:
    """Events are about the registered model (a training and a drift spec share it)."""
    registry = loaded.spec.registry
    return registry.model_name if registry is not None else loaded.spec.name


def state_folder(loaded: LoadedSpec, model: str) -> str:
    root = location(loaded.spec.artifacts.root, loaded.project_root).rstrip("/")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
    return f"{root}/alerts/{safe}"


def deliveries(loaded: LoadedSpec, ev: Event, test: bool = False) -> list[Delivery]:
    """What happened on each route (a test event skips de-duplication)."""
    alerts = loaded.spec.alerts
    if alerts is None or not alerts.routes:
        return []
    return dispatch(alerts, ev, None if test else state_folder(loaded, ev.model))


def emit(loaded: LoadedSpec, ev: Event, echo: bool = True) -> list[str]:
    """Send through the spec's `alerts:` routes (dedup/throttle state under
    <artifacts root>/alerts/<model>/); a no-op without `alerts:`; never raises (a failed
    delivery is printed, never with the URL); returns one line per delivery/skip."""
    try:
        lines = [str(d) for d in deliveries(loaded, ev) if d.status != "unrouted"]
    except Exception as exc:  # noqa: BLE001 - dispatch never raises; a bug must not fail a step
        lines = [f"alerts: {ev.kind} not sent ({type(exc).__name__})"]
    if echo:
        for line in lines:
            print(f"alert: {line}", file=sys.stderr, flush=True)
    return lines


def after_step(run: Run, step: str, outcome: _Outcome) -> None:
    """The executor's hook: the step's events, each delivery logged as a line of the step."""
    if run.loaded.spec.alerts is None:
        return
    for ev in step_events(run, step, outcome):
        for line in emit(run.loaded, ev, echo=False):
            run.hooks.step_log(step, f"alert: {line}")


def step_events(run: Run, step: str, outcome: _Outcome) -> list[Event]:
    """A failed step; for a step that ran (not a cache hit, already told): a failed gate and
    a drift verdict that says warn or retrain."""
    loaded = run.loaded
    if outcome.status == "failed":
        if run.orchestrator in CALLBACK_ORCHESTRATORS:
            return []
        return [step_failed(loaded, step, outcome.error or "failed", run.run_id,
                            run.orchestrator)]
    if outcome.status != "succeeded":
        return []
    where = {"pipeline": loaded.spec.name, "step": step, "run_id": run.run_id,
             "orchestrator": run.orchestrator}
    events = []
    gate = outcome.facts.get("gate")
    if isinstance(gate, dict) and gate.get("passed") is False:
        events.append(gate_failed(loaded, step, gate, where))
    drift = outcome.facts.get("drift")
    if isinstance(drift, dict) and drift.get("action") in DRIFT_KINDS:
        found = drift_event(loaded, _drift_summary(run, step) or drift, where)
        events += [found] if found else []
    return events


def step_failed(loaded: LoadedSpec, step: str, error: str, run_id: str, orchestrator: str,
                **facts: Any) -> Event:
    pipeline = loaded.spec.name
    first = (error.strip().splitlines() or ["failed"])[0][:300]
    return event("step.failed", model_name(loaded),
                 f"{pipeline}.{step} failed on {orchestrator} (run {run_id}): {first}",
                 {"pipeline": pipeline, "step": step, "run_id": run_id,
                  "orchestrator": orchestrator, **facts, "error": error[-2000:]},
                 key=f"{pipeline}.{step}")


def gate_failed(loaded: LoadedSpec, step: str, gate: Mapping[str, Any],
                where: Mapping[str, Any]) -> Event:
    failed = [str(c.get("detail")) for c in gate.get("checks", []) if not c.get("passed")]
    model = model_name(loaded)
    return event("gate.failed", model,
                 f"{model}: gate failed in {loaded.spec.name}.{step}, champion unchanged: "
                 + ("; ".join(failed) or "a check failed"),
                 {**where, "failed_checks": failed, "checks": len(gate.get("checks", []))},
                 key=f"{loaded.spec.name}.{step}")


def drift_event(loaded: LoadedSpec, summary: Mapping[str, Any],
                where: Mapping[str, Any] | None = None) -> Event | None:
    """drift.warn (`action: alert`) or drift.retrain; None when the summary says neither.
    Keyed by the champion it judged: one incident per champion version."""
    kind = DRIFT_KINDS.get(str(summary.get("action")))
    if kind is None:
        return None
    model = model_name(loaded)
    version = (summary.get("champion") or {}).get("version")
    share = float(summary.get("share_drifted") or 0.0)
    reasons = list(summary.get("reasons") or [])
    said = "drift warning" if kind == "drift.warn" else "drift says retrain"
    return event(kind, model, f"{model}: {said} ({share:.0%} of columns drifted): "
                 + ("; ".join(reasons) or "drift"),
                 {**(where or {}), "action": summary.get("action"), "share_drifted": share,
                  "reasons": reasons, "champion_version": version,
                  **({"report": summary["report"]} if summary.get("report") else {})},
                 key=f"v{version}" if version is not None else "no-champion")


def retrain_started(loaded: LoadedSpec, trigger: Mapping[str, Any]) -> Event:
    """From the recorded trigger (`retrain.Trigger.event` plus what the backend added)."""
    model = model_name(loaded)
    details = {k: trigger[k] for k in ("pipeline", "drift_pipeline", "orchestrator", "run",
                                       "champion", "reason", "dag", "kfp_run")
               if trigger.get(k) is not None}
    return event("retrain.started", model,
                 f"{model}: retraining {trigger.get('pipeline')} started by "
                 f"{trigger.get('drift_pipeline')} on {trigger.get('orchestrator')}: "
                 f"{trigger.get('reason')}", details, key=str(trigger.get("key") or ""))


def sample_event(loaded: LoadedSpec, kind: str) -> Event:
    model = model_name(loaded)
    return event(kind, model, f"Loopline test alert: {kind} for {model} "
                 "(sent by `loopline alerts test`)", {"spec": loaded.display}, key="test")


def _drift_summary(run: Run, step: str) -> dict[str, Any] | None:
    """The drift step's committed summary (reasons, champion); None if unreadable."""
    store, pipeline = run.store, run.loaded.spec.name
    if store is None:
        return None
    try:
        path = store.output(pipeline, step, "summary")
        return dict(json.loads(path.read_text())) if path is not None else None
    except Exception:  # noqa: BLE001 - the step's facts still say what it decided
        return None
