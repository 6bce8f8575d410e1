"""The specs CI looks at, and the variants it runs: the pull request's (a seeded sample, no
registration, its own artifact folder) and the merge's (the declared rollout, or champion).

A variant is the same spec with a few fields changed and validated again, so its steps, cache
keys and spec hash are what `loopline run` would compute for that spec.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from loopline.pipeline.load import load_pipeline
from loopline.spec.ci import Sample
from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.load import LoadedSpec, display_path
from loopline.spec.model import PipelineSpec

INGEST = "ingest.table"
GATE = "evaluate.gate"
PROMOTE = "registry.promote"
# A pull request's runs keep out of the artifacts `loopline run` and production read.
PR_ARTIFACTS = "ci"


@dataclasses.dataclass(frozen=True)
class Checked:
    """One spec file and what validating it found."""

    path: Path
    display: str
    loaded: LoadedSpec | None
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.loaded is not None


def spec_files(project_root: Path) -> list[Path]:
    folder = project_root / "pipelines"
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def check(path: Path) -> Checked:
    """Load and validate like `loopline validate-spec`: every problem as `FILE:LINE: field`."""
    try:
        loaded = load_pipeline(path)
    except SpecError as exc:
        return Checked(path, display_path(path), None, tuple(str(p) for p in exc.problems))
    return Checked(path, loaded.display, loaded, ())


def components(loaded: LoadedSpec) -> set[str]:
    return {step.component for step in loaded.spec.steps.values()}


def trains(loaded: LoadedSpec) -> bool:
    """A spec CI trains and gates on a pull request: it has a gate, and ci.pr is on."""
    return GATE in components(loaded) and loaded.spec.ci.pr


def promotes(loaded: LoadedSpec) -> bool:
    return PROMOTE in components(loaded)


def for_pull_request(loaded: LoadedSpec, sample: Sample | None = None) -> LoadedSpec:
    """Ingest draws `sample` (default: the spec's `ci.sample`); registration and everything
    after it goes (a pull request never moves an alias); artifacts go under `<root>/ci`."""
    resolved = copy.deepcopy(loaded.resolved)
    steps: dict[str, Any] = resolved["steps"]
    dropped = _after(loaded, {n for n, s in loaded.spec.steps.items() if s.component == PROMOTE})
    for name in dropped:
        del steps[name]
    drawn = (sample or loaded.spec.ci.sample).model_dump(exclude_none=True)
    for step in steps.values():
        if step["component"] == INGEST:
            step.setdefault("params", {})["sample"] = drawn
    artifacts = resolved.setdefault("artifacts", {})
    artifacts["root"] = f"{loaded.spec.artifacts.root.rstrip('/')}/{PR_ARTIFACTS}"
    return _variant(loaded, resolved)


def for_main(loaded: LoadedSpec) -> LoadedSpec:
    """A passing model goes where the spec says: into its `rollout:` (registry.promote with
    strategy canary) when one is declared, else straight to champion (strategy direct)."""
    strategy = "canary" if loaded.spec.rollout is not None else "direct"
    resolved = copy.deepcopy(loaded.resolved)
    for step in resolved["steps"].values():
        if step["component"] == PROMOTE:
            step.setdefault("params", {})["strategy"] = strategy
    return _variant(loaded, resolved)


def with_artifacts(loaded: LoadedSpec, root: str) -> LoadedSpec:
    """The same spec writing under another artifact root (the base branch's run shares the
    pull request's, an absolute location, so unchanged steps are cache hits)."""
    resolved = copy.deepcopy(loaded.resolved)
    resolved.setdefault("artifacts", {})["root"] = root
    return _variant(loaded, resolved)


def _after(loaded: LoadedSpec, roots: set[str]) -> set[str]:
    """The steps in `roots` and every step downstream of them."""
    from loopline.spec import graph

    found = set(roots)
    for name in graph.topological_order(loaded.spec):
        if set(graph.upstream(loaded.spec, name)) & found:
            found.add(name)
    return found


def _variant(loaded: LoadedSpec, resolved: dict[str, Any]) -> LoadedSpec:
    try:
        spec = PipelineSpec.model_validate(resolved)
    except ValueError as exc:  # a bug here, not the user's: say which variant failed
        raise SpecError([SpecProblem(loaded.display, 1, "ci", f"the CI variant of this spec "
                                     f"does not validate: {exc}")]) from None
    return dataclasses.replace(loaded, spec=spec, resolved=resolved)
