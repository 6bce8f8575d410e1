"""`loopline ci pr` and `loopline ci main`: validate every spec, run the ones CI trains, and
say per spec what passed, what failed (with its numbers) and what moved in the registry."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopline.ci import variants
from loopline.ci.collect import collect
from loopline.ci.outcome import CiOutcome, SpecOutcome
from loopline.integrations.git_refs import head
from loopline.spec.load import LoadedSpec

ALIASES = ("champion", "canary")


def run_ci(mode: str, project_root: Path, specs: list[Path] | None = None, *,
           out: Path, base: str | None = None, force: bool = False,
           report_only: bool = False, env: Mapping[str, str] | None = None) -> CiOutcome:
    """Every spec in pipelines/ is validated; `specs` (default: every spec that trains, for
    `pr`, or registers, for `main`) are run. Nothing here raises for a failed spec: it is an
    outcome the report names."""
    env = os.environ if env is None else env
    started = time.perf_counter()
    checked = {c.path.resolve(): c for c in map(variants.check, variants.spec_files(project_root))}
    for path in specs or []:
        checked.setdefault(path.resolve(), variants.check(path))
    chosen = [checked[p.resolve()] for p in specs] if specs else [
        c for c in checked.values() if c.valid and _runs(mode, c.loaded)]
    outcomes: list[SpecOutcome] = []
    for item in checked.values():
        outcome = SpecOutcome(item.display, item.loaded.spec.name if item.loaded else
                              item.path.stem, problems=list(item.problems))
        if item.loaded is not None and item.loaded.spec.registry is not None:
            outcome.model = item.loaded.spec.registry.model_name
        if not item.valid:
            outcome.failures.append(f"the spec does not validate ({len(item.problems)} "
                                    f"problem{'s' * (len(item.problems) != 1)})")
        elif item in chosen:
            assert item.loaded is not None
            # --report-only, or the spec's own ci.report_only on a pull request (a merge that
            # ships a refused model should fail unless someone said otherwise at the call).
            outcome.report_only = report_only or (
                mode == "pr" and item.loaded.spec.ci.report_only)
            _progress(f"ci {mode}: {item.display}")
            _guarded(mode, outcome, item.loaded, out, base, force, env)
        outcome.settle()
        outcomes.append(outcome)
    return CiOutcome(mode, head(project_root), outcomes, time.perf_counter() - started,
                     base_ref=_base_name(outcomes))


def _guarded(mode: str, outcome: SpecOutcome, loaded: LoadedSpec, out: Path,
             base: str | None, force: bool, env: Mapping[str, str]) -> None:
    """One spec's run; whatever escapes it (a missing secret, a broken store) is this
    spec's error in the report, never a traceback without one."""
    try:
        (_pull_request if mode == "pr" else _merge)(outcome, loaded, out, base, force, env)
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        outcome.crashed = True
        text = str(exc).strip().splitlines()
        outcome.failures.append(f"loopline ci failed here: {type(exc).__name__}"
                                + (f": {text[0]}" if text else ""))


def _runs(mode: str, loaded: LoadedSpec | None) -> bool:
    if loaded is None:
        return False
    return variants.trains(loaded) if mode == "pr" else variants.promotes(loaded)


def _pull_request(outcome: SpecOutcome, loaded: LoadedSpec, out: Path, base: str | None,
                  force: bool, env: Mapping[str, str]) -> None:
    """The base on the sample (when anything changed), the head, then the judgement."""
    from loopline.ci import base_run
    from loopline.integrations.git_refs import changed_files
    from loopline.runtime.ci_changes import spec_changes

    variant = variants.for_pull_request(loaded)
    # Only ingest.table draws the sample; a spec reading its data otherwise trains on it all.
    sampled = variants.INGEST in variants.components(loaded)
    outcome.sample = loaded.spec.ci.sample.describe() if sampled else None
    outcome.changes = changes = spec_changes(loaded, base, env)
    # Nothing tracked differs from the base, and nothing new where the spec reads (files
    # the runs leave behind, a lock file, say, are not a change).
    unchanged = changes.base_commit is not None and not changes.files and not \
        changed_files(loaded.project_root, changes.base_commit, ["."], untracked=False)
    trained = None
    if not unchanged:
        _progress(f"ci pr: {outcome.display} as it is at the base, {changes.base_commit}")
        trained = base_run.train_base(loaded, variant, changes.base_commit,
                                      lambda spec: _run(spec, force))
        _progress(f"ci pr: {outcome.display} on this branch")
    collect(outcome, variant, _run(variant, force), out)
    if trained is None:
        trained = base_run.same_as_head(changes.base_commit, outcome.verdict,
                                        base_run.eval_hash(variant))
    base_run.judge(outcome, variant, trained)


def _merge(outcome: SpecOutcome, loaded: LoadedSpec, out: Path, base: str | None,
           force: bool, env: Mapping[str, str]) -> None:
    """The full pipeline; then what moved: the aliases before and after, and the rollout
    the canary begins (its first look, so the report can name its id and first step)."""
    from loopline.runtime.ci_changes import spec_changes

    variant = variants.for_main(loaded)
    before = _aliases(variant)
    collect(outcome, variant, _run(variant, force), out)
    after = _aliases(variant)
    outcome.moved = [f"{alias}: {_v(before[alias])} → {_v(after[alias])}"
                     for alias in ALIASES if before[alias] != after[alias]]
    if loaded.spec.rollout is not None and after["canary"] and \
            after["canary"] != before["canary"]:
        outcome.rollout = _begin_rollout(variant)
    outcome.changes = spec_changes(loaded, base or "HEAD~1", env)


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def _run(loaded: LoadedSpec, force: bool) -> dict[str, Any]:
    from loopline.backends.local.runner import LocalRunner

    # Libraries print to stdout (MLflow's "View run at ..."); stdout is the report's.
    with contextlib.redirect_stdout(sys.stderr):
        return LocalRunner().run(loaded, force=force)


def _aliases(loaded: LoadedSpec) -> dict[str, str | None]:
    from loopline.runtime.rollout import alias_version_of

    return {alias: alias_version_of(loaded, alias) for alias in ALIASES}


def _begin_rollout(loaded: LoadedSpec) -> dict[str, Any]:
    """The controller's first look begins the rollout; a watcher already running is fine
    (it begins it instead), so a refused look is only a note."""
    from loopline.runtime import rollout

    try:
        with contextlib.redirect_stdout(sys.stderr):
            state = rollout.evaluate(loaded)
    except Exception as exc:  # noqa: BLE001 - the model is registered; the report says why
        return {"note": f"the rollout did not begin here ({exc}); the rollout controller "
                        "(`loopline rollout watch`, the Airflow rollout DAG) begins it"}
    return {key: state.get(key) for key in ("id", "status", "step", "weight", "mode",
                                             "challenger", "champion")}


def _base_name(outcomes: list[SpecOutcome]) -> str | None:
    return next((o.changes.base_ref for o in outcomes if o.changes is not None
                 and o.changes.base_ref), None)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
