"""Read what a CI run left behind (the run summary, the step outputs) into a SpecOutcome.

Outputs are read through the artifact store, so an object-store root works as a local one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from loopline.ci.outcome import SpecOutcome
from loopline.ci.variants import GATE, INGEST
from loopline.runtime.lineage import git_commit
from loopline.runtime.store import ArtifactStore, open_store
from loopline.spec.load import LoadedSpec

VALIDATE = "validate.expectations"


def collect(outcome: SpecOutcome, loaded: LoadedSpec, summary: dict[str, Any],
            out: Path) -> SpecOutcome:
    """Fill `outcome` from a finished run of `loaded` and judge it: a failed step, failed
    data validation or a failed gate check is a failure, each named with its numbers."""
    store = open_store(loaded.spec.artifacts.root, loaded.project_root)
    outcome.run = summary
    steps = summary["steps"]
    by_component = {s.component: n for n, s in loaded.spec.steps.items()}
    for name, step in steps.items():
        if step["status"] != "failed":
            continue
        if name == by_component.get(VALIDATE):  # bad data stopped the run: a data verdict
            outcome.failures.append(f"data validation: {_first_line(step.get('error'))}")
        else:
            outcome.crashed = True
            outcome.failures.append(f"step {name} failed: {_first_line(step.get('error'))}")
    if (ingest := by_component.get(INGEST)) and ingest in steps:
        outcome.rows = dict(steps[ingest].get("metrics") or {})
        manifest = store.read_manifest(loaded.spec.name, ingest) or {}
        outcome.lineage["data"] = manifest.get("data_hashes", {})
    if (validate := by_component.get(VALIDATE)) and validate in steps:
        outcome.validation = _validation(store, loaded, validate, steps[validate])
    if (gate := by_component.get(GATE)) and steps.get(gate, {}).get("status") in (
            "succeeded", "cached"):
        outcome.verdict = read_json(store, loaded, gate, "verdict")
        _plots(outcome, store, loaded, gate, out)
    if outcome.verdict is not None and not outcome.verdict["passed"]:
        outcome.failures += [f"gate: {c['detail']}" for c in outcome.verdict["checks"]
                             if not c["passed"]]
    outcome.lineage.update({
        "run_id": summary["run_id"], "spec_hash": loaded.spec_hash,
        "git_commit": git_commit(loaded.project_root),
        "artifacts": f"{loaded.spec.artifacts.root.rstrip('/')}/{loaded.spec.name}",
        "experiment": loaded.spec.tracking.mlflow.experiment or loaded.spec.name})
    outcome.settle()
    return outcome


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "no error recorded"


def _validation(store: ArtifactStore, loaded: LoadedSpec, step: str,
                summary: dict[str, Any]) -> dict[str, Any]:
    """The validation result; a failed validation stops the run, so its facts are in the
    step's error (every failed expectation, one per line)."""
    if summary["status"] == "failed":
        lines = (summary.get("error") or "").strip().splitlines()
        return {"success": False, "error": lines[0] if lines else "",
                "failed_lines": [line.strip() for line in lines[1:] if line.strip()]}
    if summary["status"] not in ("succeeded", "cached"):
        return {"success": None, "error": summary.get("note", "not run")}
    return read_json(store, loaded, step, "result") or {"success": None}


def read_json(store: ArtifactStore, loaded: LoadedSpec, step: str, output: str) -> Any:
    """A JSON output of the step's last complete run; None when it cannot be read."""
    try:
        path = store.output(loaded.spec.name, step, output)
        return json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None


def _plots(outcome: SpecOutcome, store: ArtifactStore, loaded: LoadedSpec, step: str,
           out: Path) -> None:
    """evaluation.png copied beside the report (a CI artifact); the ROC curves kept as data,
    drawn in the Markdown itself."""
    folder = store.output(loaded.spec.name, step, "plots")
    if folder is None or not folder.is_dir():
        return
    for name in ("roc", "roc_champion"):
        if (curve := folder / f"{name}.json").is_file():
            outcome.curves[name] = json.loads(curve.read_text())
    if (image := folder / "evaluation.png").is_file():
        target = out / loaded.spec.name / "evaluation.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
        outcome.plots["evaluation"] = target
