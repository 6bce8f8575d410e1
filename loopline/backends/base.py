"""The backend interface: a backend either runs a spec or compiles it for an orchestrator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from loopline.runtime.hashing import stable_hash
from loopline.spec.load import LoadedSpec


def step_fingerprint(loaded: LoadedSpec, step: str) -> str:
    """One step as written, with the defaults it inherits: a stage of dvc.yaml and an
    Airflow pod pass it to `loopline step --fingerprint`, which refuses a spec that changed."""
    raw = loaded.doc.data["steps"][step]
    return stable_hash({"step": raw, "defaults": loaded.doc.data.get("defaults")})[:12]


def spec_fingerprint(loaded: LoadedSpec) -> str:
    """The spec as written (params references unresolved, so run-time params don't count):
    a compiled pipeline carries it, and a task refuses a step image whose copy differs."""
    return stable_hash(loaded.doc.data)[:12]


class SpecMismatch(RuntimeError):
    """The spec in the step image is not the one the pipeline was compiled from."""


def check_fingerprint(loaded: LoadedSpec, compiled: str | None, image: str = "") -> None:
    if compiled and spec_fingerprint(loaded) != compiled:
        raise SpecMismatch(
            f"{loaded.display} in this image{f' ({image})' if image else ''} is not the spec "
            f"the pipeline was compiled from (fingerprint {spec_fingerprint(loaded)}, "
            f"compiled {compiled}): rebuild and push the step image, or recompile")


class Backend(ABC):
    """Backends translate; they hold no component logic (that lives in `execute_step`)."""

    name: str


class Runner(Backend):
    @abstractmethod
    def run(self, loaded: LoadedSpec, **options: Any) -> dict[str, Any]:
        """Run the pipeline; return the run summary (the `--json` contract)."""


class Compiler(Backend):
    @abstractmethod
    def compile(self, loaded: LoadedSpec, output: Path) -> Path:
        """Write the orchestrator's definition of the pipeline to `output`."""
