"""`loopline run --backend kfp-local`: the compiled KFP graph, run on this machine by kfp's
SubprocessRunner in this interpreter. The summary is the `loopline run --json` contract, built
from the step outcomes each task left in its output artifacts' metadata."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loopline.backends.base import Runner
from loopline.backends.kfp.compile import KfpCompiler, build_pipeline, pipeline_name
from loopline.backends.kfp.progress import TaskProgress, kfp_output_to
from loopline.backends.kfp.task import OUTCOME_KEY
from loopline.backends.summary import run_summary
from loopline.components import registry
from loopline.runtime.environment import applied, step_environment
from loopline.runtime.executor import StepOutcome
from loopline.spec import graph
from loopline.spec.load import LoadedSpec


class KfpLocalRunner(Runner):
    name = "kfp-local"

    def run(self, loaded: LoadedSpec, *, params: dict[str, Any] | None = None,
            **_: Any) -> dict[str, Any]:
        with applied(step_environment(loaded)):  # tasks inherit it, as pods get it rendered
            return self._run(loaded, params)

    def _run(self, loaded: LoadedSpec, params: dict[str, Any] | None) -> dict[str, Any]:
        import kfp.local

        root = loaded.project_root / ".loopline" / "kfp-local"
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
        pipeline = build_pipeline(loaded)
        started = time.perf_counter()
        before = set(root.glob(f"{pipeline_name(loaded)}-*"))
        log = (loaded.project_root / ".loopline" / "logs"
               / f"kfp-local-{time.strftime('%Y%m%dT%H%M%S')}.log")
        error = None
        with kfp_output_to(log) as terminal, \
                TaskProgress(loaded, task_names(loaded), root, before, terminal):
            try:
                pipeline(**({"params": params} if params else {}))
            except Exception as exc:  # noqa: BLE001 - kfp raises RuntimeError for a failed task
                error = str(exc)
        print(f"kfp's own log: {log.relative_to(loaded.project_root)}", file=sys.stderr)
        runs = sorted(set(root.glob(f"{pipeline_name(loaded)}-*")) - before,
                      key=lambda p: p.stat().st_mtime)
        folder = runs[-1] if runs else None
        summary = run_summary(folder.name if folder else None,
                              _outcomes(loaded, folder, failed=error is not None))
        summary["duration_s"] = round(time.perf_counter() - started, 3)
        if error:
            summary["status"] = "failed"
            summary["error"] = error
        return summary


def task_names(loaded: LoadedSpec) -> dict[str, str]:
    """Step -> KFP task name (derived from the component; kfp-local names folders by it),
    read back from the compiled IR where each task's display name is its step."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = KfpCompiler().compile(loaded, Path(tmp) / "pipeline.yaml")
        ir = next(yaml.safe_load_all(path.read_text()))
    return {task["taskInfo"]["name"]: name for name, task in ir["root"]["dag"]["tasks"].items()}


def _outcomes(loaded: LoadedSpec, run_folder: Path | None,
              failed: bool) -> dict[str, StepOutcome]:
    names = task_names(loaded)
    outcomes = {}
    for step in graph.topological_order(loaded.spec):
        component = registry.get(loaded.spec.steps[step].component)
        folder = run_folder / names[step] if run_folder else None
        outputs = {n: folder / f"out_{n}" for n in component.outputs} if folder else {}
        if not outputs or not all(path.exists() for path in outputs.values()):
            outcomes[step] = StepOutcome("failed" if failed else "skipped")
            continue
        recorded = _recorded_outcome(folder) if folder else {}
        outcomes[step] = StepOutcome(
            "succeeded", recorded.get("duration_s", 0.0),
            {n: str(p) for n, p in outputs.items()}, recorded.get("metrics", {}),
            recorded.get("facts", {}))
    return outcomes


def _recorded_outcome(task_folder: Path) -> dict[str, Any]:
    """What `run_kfp_step` put in its output artifacts' metadata (executor_output.json)."""
    try:
        executor_output = json.loads((task_folder / "executor_output.json").read_text())
    except (OSError, ValueError):
        return {}
    for listed in executor_output.get("artifacts", {}).values():
        for artifact in listed.get("artifacts", []):
            if OUTCOME_KEY in artifact.get("metadata", {}):
                return dict(artifact["metadata"][OUTCOME_KEY])
    return {}
