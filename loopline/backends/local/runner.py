"""Local backend: every step in-process, in dependency order, cached, with progress output."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from loopline.backends.base import Runner
from loopline.backends.summary import run_summary
from loopline.runtime.context import Run, new_run_id
from loopline.runtime.environment import applied, step_environment
from loopline.runtime.executor import StepOutcome, execute_step
from loopline.runtime.hooks import ConsoleProgress, RunHooks
from loopline.runtime.store import write_atomic
from loopline.spec import graph
from loopline.spec.load import LoadedSpec


class LocalRunner(Runner):
    name = "local"

    def run(self, loaded: LoadedSpec, *, force: bool = False, only: list[str] | None = None,
            hooks: RunHooks | None = None, run_id: str | None = None,
            **_: Any) -> dict[str, Any]:
        with applied(step_environment(loaded)):  # the spec's env:, as pods would get it
            return self._run(loaded, force, only, hooks, run_id)

    def _run(self, loaded: LoadedSpec, force: bool, only: list[str] | None,
             hooks: RunHooks | None, run_id: str | None) -> dict[str, Any]:
        run = Run(loaded, run_id or new_run_id(), "local", hooks=hooks or ConsoleProgress())
        order = graph.topological_order(loaded.spec)
        if only:
            order = [s for s in order if s in only]
        outcomes: dict[str, StepOutcome] = {}
        failed: str | None = None
        started = time.perf_counter()
        try:
            for index, step in enumerate(order, start=1):
                if failed is not None:  # fail fast: nothing new starts after a failure
                    note = f"not started: step {failed!r} failed"
                    outcomes[step] = StepOutcome("skipped", note=note)
                    run.hooks.step_finished(step, "skipped", 0.0, note)
                    continue
                outcome = execute_step(run, step, index, len(order), force=force)
                outcomes[step] = outcome
                if outcome.status == "failed":
                    failed = step
        finally:
            summary = run_summary(run.run_id, outcomes)
            run.tracker.finish(summary["status"])
        summary["duration_s"] = round(time.perf_counter() - started, 3)
        _record(run, summary)
        return summary


def _record(run: Run, summary: dict[str, Any]) -> None:
    """Keep every run's summary beside the artifacts (local stores only)."""
    folder = getattr(run.store, "root", None)
    if folder is None or "://" in str(run.loaded.spec.artifacts.root):
        return
    path = folder / run.loaded.spec.name / "runs" / f"{run.run_id}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(summary, indent=2, default=str))
    except OSError as exc:
        print(f"warning: could not record the run summary: {exc}", file=sys.stderr)
