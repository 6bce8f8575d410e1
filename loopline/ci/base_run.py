"""The base branch trained on the same sample: what a pull request's change is judged against.

A model trained on a 20,000-row sample is not judged fairly against a champion trained on all
rows: the gap measures the sample, not the change (on the example, the MLP loses 0.036 ROC AUC
to its champion with the sample alone). So `ci pr` also trains the spec as it was at the merge
base, on the same sample, and the gate's relative checks compare the two on the same eval
rows. The champion's figures stay in the report; `ci main` gates against it on all rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from loopline.ci import variants
from loopline.ci.outcome import SpecOutcome
from loopline.integrations import git_refs
from loopline.ml.gate import evaluate_checks
from loopline.ml.metric_names import HIGHER_IS_BETTER, LATENCY
from loopline.pipeline.load import load_pipeline, step_params
from loopline.runtime.store import open_store
from loopline.spec.errors import SpecError
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location

RELATIVE = ("max_drop_vs_champion", "max_ratio_vs_champion")
BASE_TREE = Path(".loopline") / "ci-base"  # git-ignored by `loopline init`
INGEST, GATE = variants.INGEST, variants.GATE


@dataclasses.dataclass
class BaseRun:
    """The base's run on the sample: its verdict, or why there is none."""

    commit: str | None
    verdict: dict[str, Any] | None = None
    note: str = ""
    eval_hash: str | None = None  # the sample's eval rows, to check they are the head's
    same_rows: bool = False


def train_base(loaded: LoadedSpec, head: LoadedSpec, commit: str | None,
               run: Any) -> BaseRun:
    """Run the spec as it was at `commit` on the same sample. The base's tree stays at
    `.loopline/ci-base` and its artifacts at `<CI artifacts>-base`, so a second push of the
    same pull request finds the base cached. `run(loaded)` runs a spec."""
    if commit is None:
        return BaseRun(None, note="no base commit to train")
    relative = loaded.path.relative_to(loaded.project_root)
    root = git_refs.checkout(loaded.project_root, commit, loaded.project_root / BASE_TREE)
    if root is None:
        return BaseRun(commit, note=f"git could not check out {commit}")
    if not (root / relative).is_file():
        return BaseRun(commit, note=f"{relative.as_posix()} is new on this branch")
    try:
        base = variants.for_pull_request(load_pipeline(root / relative))
    except SpecError as exc:
        return BaseRun(commit, note=f"the base's spec does not load ({exc.problems[0]})")
    # Its own artifact root beside the head's: the two never evict each other's cache.
    shared = location(head.spec.artifacts.root, head.project_root).rstrip("/") + "-base"
    base = variants.with_artifacts(base, shared)
    summary = run(base)
    if summary["status"] != "succeeded":
        failed = next((n for n, s in summary["steps"].items() if s["status"] == "failed"),
                      "a step")
        return BaseRun(commit, note=f"the base's run failed at {failed}")
    store = open_store(shared, head.project_root)
    return BaseRun(commit, _read_verdict(store, base), eval_hash=_eval_hash(store, base))


def same_as_head(commit: str | None, verdict: dict[str, Any] | None,
                 eval_hash: str | None) -> BaseRun:
    """Nothing in the project differs from the base: the base would train this very model."""
    return BaseRun(commit, verdict, "nothing in the project changed, so the base is this "
                   "model", eval_hash=eval_hash)


def eval_hash(loaded: LoadedSpec) -> str | None:
    store = open_store(loaded.spec.artifacts.root, loaded.project_root)
    return _eval_hash(store, loaded)


def _step(loaded: LoadedSpec, component: str) -> str | None:
    return next((n for n, s in loaded.spec.steps.items() if s.component == component), None)


def _read_verdict(store: Any, loaded: LoadedSpec) -> dict[str, Any] | None:
    import json

    step = _step(loaded, GATE)
    manifest = store.read_manifest(loaded.spec.name, step) or {} if step else {}
    entry = manifest.get("outputs", {}).get("verdict")
    if not entry or step is None:
        return None
    path = store.local_path(loaded.spec.name, step, entry["path"], entry.get("hash") or "")
    return json.loads(Path(path).read_text())


def _eval_hash(store: Any, loaded: LoadedSpec) -> str | None:
    """The content hash of the sample's eval rows, from the ingest step's manifest."""
    step = _step(loaded, INGEST)
    manifest = (store.read_manifest(loaded.spec.name, step) or {}) if step else {}
    return (manifest.get("outputs", {}).get("eval") or {}).get("hash")


def judge(outcome: SpecOutcome, head: LoadedSpec, base: BaseRun) -> None:
    """With the base comparable (its run on the same eval rows), its metrics replace the
    champion's in the relative checks: the failures are the absolute checks (and data
    quality) plus the relative ones against the base. Without it, the verdict against the
    champion stands, as collected."""
    outcome.base = base
    if outcome.verdict is None or base.verdict is None:
        return
    head_rows = eval_hash(head)
    base.same_rows = head_rows is not None and base.eval_hash == head_rows
    if not base.same_rows:
        base.note = "the change alters the eval rows, so the base is not compared"
        return
    step = _step(head, GATE)
    assert step is not None
    # Quality against the base (same sample, same rows). Latency stays against the champion:
    # the gate timed both models interleaved in one process, while the base ran apart.
    gates = [g for g in step_params(head, step).gates if g.metric not in LATENCY and (
        g.max_drop_vs_champion is not None or g.max_ratio_vs_champion is not None)]
    relative = evaluate_checks(gates, outcome.verdict["metrics"], base.verdict["metrics"],
                               "no base metrics", HIGHER_IS_BETTER)
    relative = [c for c in relative if c["check"] in RELATIVE]
    for check in relative:
        check["detail"] = check["detail"].replace("vs champion", "vs base")
    outcome.base_checks = relative
    kept = [c for c in outcome.verdict["checks"]
            if c["check"] not in RELATIVE or c["metric"] in LATENCY]
    outcome.base_checks = relative
    outcome.kept_checks = kept
    outcome.failures = [f for f in outcome.failures if not f.startswith("gate: ")]
    outcome.failures += [f"gate: {c['detail']}" for c in kept + relative if not c["passed"]]
