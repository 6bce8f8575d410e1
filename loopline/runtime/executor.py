"""Running one step: the single function behind `loopline run`, `loopline step`, DVC, Airflow
and KFP tasks. A cache hit (runtime.cache_key) needs the manifest to carry the same key and
every output to still be there; otherwise the step runs in a staging folder and its outputs
are committed atomically (runtime.store)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopline.components.contract import StepFailed, StepResult
from loopline.components.registry import get as registry_component
from loopline.runtime import alerting
from loopline.runtime.cache_key import MissingInput, StepPlan, plan_step
from loopline.runtime.context import Run, StepRunContext, lineage_facts
from loopline.runtime.hashing import path_md5


@dataclass
class StepOutcome:
    status: str  # succeeded | cached | failed | skipped
    duration_s: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    verdict: bool = False  # failed by the component's own verdict: a retry cannot help

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v not in (None, "") or k == "status"}


class StepTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """SIGALRM-based limit; only possible in the main thread (elsewhere the backend enforces)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"timed out after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def execute_step(run: Run, step: str, index: int = 1, total: int = 1,
                 force: bool = False, retries: int | None = None) -> StepOutcome:
    """Run (or reuse) one step and commit its outputs atomically; never raises for step errors.

    `retries` overrides the spec's: orchestrators that retry tasks themselves pass 0. What
    the outcome says (a failure, a failed gate, drift) goes to the spec's `alerts:` routes.
    """
    outcome = _execute_step(run, step, index, total, force, retries)
    alerting.after_step(run, step, outcome)
    return outcome


def _execute_step(run: Run, step: str, index: int, total: int, force: bool,
                  retries: int | None) -> StepOutcome:
    loaded, store, hooks = run.loaded, run.store, run.hooks
    pipeline = loaded.spec.name
    started = time.perf_counter()
    try:
        plan = plan_step(run, step)
    except MissingInput as exc:
        hooks.step_finished(step, "failed", 0.0, str(exc))
        return StepOutcome("failed", error=str(exc))
    manifest = store.read_manifest(pipeline, step)
    reusable = (manifest and not force and loaded.spec.steps[step].cache
                and plan.component.cacheable)
    stale = ""
    if reusable and manifest.get("key") == plan.key and \
            store.outputs_intact(pipeline, step, manifest) and \
            not (stale := _stale_judgement(run, plan, manifest)):
        note = f"cached: inputs, params and code unchanged (key {plan.key[:8]}, " \
               f"from run {manifest.get('run_id')})"
        hooks.step_finished(step, "cached", time.perf_counter() - started, note)
        return StepOutcome("cached", round(time.perf_counter() - started, 3),
                           _output_uris(run, step, manifest), manifest.get("metrics", {}),
                           manifest.get("facts", {}), note=note)
    if stale:
        hooks.step_log(step, stale)
    attempts = (run.loaded.spec.retries(step) if retries is None else retries) + 1
    error, verdict = "", False
    for attempt in range(1, attempts + 1):
        hooks.step_started(step, index, total, attempt)
        staging = store.staging(pipeline, step)
        try:
            result, log_lines = _invoke(run, step, plan, staging)
            outcome = _commit(run, step, plan, staging, result, log_lines, started)
            hooks.step_finished(step, "succeeded", outcome.duration_s, "")
            return outcome
        except StepFailed as exc:  # the component's own verdict: retrying cannot help
            store.discard(staging)
            # The verdict replaces what the step said before (e.g. data that passed
            # validation last week and fails now): steps after it must not run on the old one.
            store.invalidate(pipeline, step)
            error, verdict = str(exc), True
            break
        except Exception as exc:  # noqa: BLE001 - any crash is reported, not propagated
            store.discard(staging)
            error = f"{type(exc).__name__}: {exc}"
            hooks.step_log(step, _crash_report(run, step, attempt, exc))
            if attempt < attempts:
                delay = run.loaded.spec.retry_delay_s(step)
                hooks.step_log(step, f"attempt {attempt} failed; retrying in {delay:g}s")
                time.sleep(delay)
    seconds = round(time.perf_counter() - started, 3)
    hooks.step_finished(step, "failed", seconds, error)
    return StepOutcome("failed", seconds, error=error, verdict=verdict)


def _stale_judgement(run: Run, plan: StepPlan, manifest: dict[str, Any]) -> str:
    """Why a gate's cached verdict no longer holds ("" while it does): it holds while the
    champion is the version it judged against, or one this pipeline registered since (its
    own promotion); any other move of the champion means judging again."""
    component, registry = plan.component, run.loaded.spec.registry
    if component.compares_with_alias is None or registry is None:
        return ""
    from loopline.integrations.registry_peek import alias_version

    alias = component.compares_with_alias(plan.params)
    current = alias_version(run.registry_uri, registry.model_name, alias)
    judged = str(manifest.get("facts", {}).get("compared_with", ""))
    fine = {judged}
    for name, spec_step in run.loaded.spec.steps.items():
        if registry_component(spec_step.component).touches_registry:
            facts = (run.store.read_manifest(run.loaded.spec.name, name) or {}).get("facts", {})
            fine.add(str(facts.get("model", {}).get("version", "")))
    if current in fine:
        return ""
    return (f"{alias} is v{current or ' (none)'} now, the cached verdict judged against "
            f"{'v' + judged if judged else 'no ' + alias}: judging again")


def step_log_folder(run: Run) -> Path:
    """Where a local run keeps what libraries print and crash tracebacks, per step."""
    return run.loaded.project_root / ".loopline" / "logs" / run.run_id


@contextlib.contextmanager
def _library_output(run: Run, step: str) -> Iterator[None]:
    """What libraries print while a local step runs (MLflow's registration notes, Feast's
    coloured banners, deprecation warnings) goes to the step's log file; the terminal keeps
    Loopline's own progress. An orchestrator's task log keeps everything, as it is."""
    if run.orchestrator not in ("local", "dvc"):
        yield
        return
    path = step_log_folder(run) / f"{step}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("a", encoding="utf-8")
    except OSError:
        yield
        return
    try:
        with log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
                warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, into the file
            yield
    finally:
        if path.stat().st_size == 0:
            path.unlink()


def _crash_report(run: Run, step: str, attempt: int, exc: BaseException) -> str:
    """A crash's traceback: in the step log where that log is an orchestrator's task log
    (Airflow, KFP), else in a file under .loopline/logs named by one readable line."""
    detail = "".join(traceback.format_exception(exc)).rstrip()
    if run.orchestrator not in ("local", "dvc"):
        return detail
    path = step_log_folder(run) / f"{step}.attempt{attempt}.traceback"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(detail + "\n")
    except OSError:
        return detail
    shown = path.relative_to(run.loaded.project_root)
    return f"crashed: {type(exc).__name__}: {str(exc)[:300]} (traceback: {shown})"


def _invoke(run: Run, step: str, plan: StepPlan, staging: Path) -> tuple[StepResult, list[str]]:
    outputs = {name: out.filename for name, out in plan.component.outputs.items()}
    ctx = StepRunContext(run, step, staging, plan.inputs, outputs,
                         lineage_facts(run, plan.data_hashes))
    with run.tracker.step(step), _time_limit(run.loaded.spec.timeout_s(step)), \
            _library_output(run, step):
        result = plan.component.run(ctx, plan.params) or StepResult()
        if result.metrics:
            run.tracker.log_metrics(step, result.metrics)
    missing = [n for n, f in outputs.items() if not (staging / f).exists()]
    if missing:
        raise RuntimeError(f"{plan.component.name} did not write output(s) {missing}")
    return result, ctx.log_lines


def _commit(run: Run, step: str, plan: StepPlan, staging: Path, result: StepResult,
            log_lines: list[str], started: float) -> StepOutcome:
    outputs = {}
    for name, out in plan.component.outputs.items():
        path = staging / out.filename
        outputs[name] = {"path": out.filename, "hash": path_md5(path),
                         "size": path.stat().st_size if path.is_file() else None,
                         "kind": out.kind}
    seconds = round(time.perf_counter() - started, 3)
    manifest = {"step": step, "component": plan.component.name, "key": plan.key,
                "params": plan.params.model_dump(mode="json"), "inputs": plan.input_hashes,
                "data_hashes": plan.data_hashes, "outputs": outputs,
                "metrics": dict(result.metrics), "facts": dict(result.facts),
                "run_id": run.run_id, "orchestrator": run.orchestrator,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "duration_s": seconds, "log": log_lines}
    run.store.commit(run.loaded.spec.name, step, staging, manifest)
    return StepOutcome("succeeded", seconds, _output_uris(run, step, manifest),
                       dict(result.metrics), dict(result.facts))


def _output_uris(run: Run, step: str, manifest: dict[str, Any]) -> dict[str, str]:
    return {name: run.store.uri(run.loaded.spec.name, step, entry["path"])
            for name, entry in manifest.get("outputs", {}).items()}


def execute_single_step(run: Run, step: str, *, retries: int | None = None,
                        force: bool = False, raise_on_failure: bool = False) -> StepOutcome:
    """One step as its own run (an orchestrator task, `loopline step`): execute it, close the
    tracking run with its status, and raise for orchestrators that retry failed tasks
    (StepVerdict when retrying cannot help). Callers build `run` inside
    `environment.applied`, since the tracking URI may come from the spec's `env:`."""
    status = "failed"
    try:
        outcome = execute_step(run, step, retries=retries, force=force)
        status = outcome.status
    finally:
        run.tracker.finish(status)
    if raise_on_failure and outcome.status == "failed":
        kind = StepVerdict if outcome.verdict else RuntimeError
        raise kind(f"step {step!r} failed: {outcome.error}")
    return outcome


class StepVerdict(RuntimeError):
    """A step failed by its own verdict (bad data, a failed gate): the same inputs give the
    same answer, so an orchestrator must not retry it."""


# Orchestrators that retry failed tasks themselves: Loopline's own retry loop stays off in
# their tasks, or attempts multiply (3 Airflow tries x 3 Loopline attempts = 9 runs).
RETRYING_ORCHESTRATORS = ("airflow", "kfp")


def own_retries(orchestrator: str) -> int | None:
    """The `retries` to pass for a step run by `orchestrator` (None: the spec's)."""
    return 0 if orchestrator in RETRYING_ORCHESTRATORS else None
