"""The backend interface: a backend either runs a spec or compiles it for an orchestrator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from loopline.spec.load import LoadedSpec


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
