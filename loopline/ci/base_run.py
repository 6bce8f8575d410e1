"""The base branch trained on the same sample: what a pull request's change is judged against.

A model trained on a 20,000-row sample is not judged fairly against a champion trained on all
rows: the gap measures the sample, not the change (on the example, the MLP loses 0.036 ROC AUC
to its champion with the sample alone). So `ci pr` also trains the spec as it was at the merge
base, on the same sample, and the gate's quality checks relative to the champion compare the
two on the same eval rows instead. The champion's figures stay in the report; `ci main` gates
against it on all rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from loopline.ci import variants
from loopline.ci.collect import read_json
from loopline.ci.outcome import SpecOutcome
from loopline.integrations import git_refs
from loopline.ml.gate import RELATIVE_CHECKS, evaluate_checks
from loopline.ml.metric_names import HIGHER_IS_BETTER, LATENCY
from loopline.pipeline.load import load_pipeline, step_params
from loopline.runtime.store import ArtifactStore, open_store
from loopline.spec.errors import SpecError
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location


@dataclasses.dataclass
class BaseRun:
    """The base's run on the sample: its verdict, or why there is none."""

    commit: str | None
    verdict: dict[str, Any] | None = None
    note: str = ""
    eval_hash: str | None = None  # the sample's eval rows, to check they are the head's
    same_rows: bool = False


def base_tree(project_root: Path) -> Path:
    """Where the base is checked out: outside the project (a worktree inside it would show in
    `git status`), at a place fixed per project, so its paths, and with them its steps' cache
    keys, stay the same from one run to the next on this machine."""
    digest = hashlib.sha256(str(project_root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "loopline-ci-base" / digest


def train_base(loaded: LoadedSpec, head: LoadedSpec, commit: str | None,
               run: Any) -> BaseRun:
    """Run the spec as it was at `commit` on the head's sample (the base may declare another,
    or none), its artifacts at `<CI artifacts>-base`. `run(loaded)` runs a spec."""
    if commit is None:
        return BaseRun(None, note="no base commit to train")
    relative = loaded.path.relative_to(loaded.project_root)
    root = git_refs.checkout(loaded.project_root, commit, base_tree(loaded.project_root))
    if root is None:
        return BaseRun(commit, note=f"git could not check out {commit}")
    if not (root / relative).is_file():
        return BaseRun(commit, note=f"{relative.as_posix()} is new on this branch")
    try:
        base = variants.for_pull_request(load_pipeline(root / relative),
                                         sample=loaded.spec.ci.sample)
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
    verdict = _verdict(store, base)
    if verdict is None:
        return BaseRun(commit, note="the base's verdict could not be read")
    return BaseRun(commit, verdict, eval_hash=_eval_hash(store, base))


def same_as_head(commit: str | None, verdict: dict[str, Any] | None,
                 eval_hash: str | None) -> BaseRun:
    """Nothing in the project differs from the base: the base would train this very model."""
    return BaseRun(commit, verdict, "nothing in the project changed, so the base is this "
                   "model", eval_hash=eval_hash)


def eval_hash(loaded: LoadedSpec) -> str | None:
    return _eval_hash(open_store(loaded.spec.artifacts.root, loaded.project_root), loaded)


def _step(loaded: LoadedSpec, component: str) -> str | None:
    return next((n for n, s in loaded.spec.steps.items() if s.component == component), None)


def _verdict(store: ArtifactStore, loaded: LoadedSpec) -> dict[str, Any] | None:
    step = _step(loaded, variants.GATE)
    return read_json(store, loaded, step, "verdict") if step else None


def _eval_hash(store: ArtifactStore, loaded: LoadedSpec) -> str | None:
    """The content hash of the sample's eval rows, from the ingest step's manifest."""
    step = _step(loaded, variants.INGEST)
    manifest = (store.read_manifest(loaded.spec.name, step) or {}) if step else {}
    return (manifest.get("outputs", {}).get("eval") or {}).get("hash")


def _same_rows(head: dict[str, Any], head_hash: str | None, base: BaseRun) -> str:
    """"" when the base was judged on the head's eval rows, else why it cannot be compared.
    The same ingested eval file settles it. Otherwise (a change to ingest's columns rewrites
    the file) the rows the gate judged must match in number and time window."""
    if head_hash is not None and head_hash == base.eval_hash:
        return ""
    assert base.verdict is not None
    if head.get("judged_on") and head.get("judged_on") == base.verdict.get("judged_on") and \
            head.get("judged_on", {}).get("from"):
        return ""
    if head_hash is None or base.eval_hash is None:
        return "no ingest.table output tells whether its eval rows are this branch's"
    return "the change alters the eval rows, so the base is not compared"


def judge(outcome: SpecOutcome, head: LoadedSpec, base: BaseRun) -> None:
    """With the base comparable (judged on the same eval rows), its metrics replace the
    champion's in the quality checks relative to the champion. Latency stays against the
    champion: the gate timed both models interleaved in one process, while the base ran apart.
    Without a comparable base, the verdict against the champion stands, as collected."""
    outcome.base = base
    if outcome.verdict is None or base.verdict is None:
        return
    if reason := _same_rows(outcome.verdict, eval_hash(head), base):
        base.note = reason
        return
    base.same_rows = True
    step = _step(head, variants.GATE)
    assert step is not None
    gates = [g for g in step_params(head, step).gates if g.metric not in LATENCY and (
        g.max_drop_vs_champion is not None or g.max_ratio_vs_champion is not None)]
    relative = [dict(c, against="base", detail=c["detail"].replace("vs champion", "vs base"))
                for c in evaluate_checks(gates, outcome.verdict["metrics"],
                                         base.verdict["metrics"], "no base metrics",
                                         HIGHER_IS_BETTER)
                if c["check"] in RELATIVE_CHECKS]
    kept = [c for c in outcome.verdict["checks"]
            if c["check"] not in RELATIVE_CHECKS or c["metric"] in LATENCY]
    outcome.base_checks, outcome.kept_checks = relative, kept
    outcome.failures = [f for f in outcome.failures if not f.startswith("gate: ")]
    outcome.failures += [f"gate: {c['detail']}" for c in kept + relative if not c["passed"]]
    outcome.settle()
