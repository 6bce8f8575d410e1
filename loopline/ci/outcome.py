"""What one `loopline ci` run found, per spec: the facts the report is written from.

Plain data (no I/O) so the report can be rendered, and tested, from any outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A spec's result in the report, worst first.
ERROR, FAILED, PASSED, VALIDATED = "error", "failed", "passed", "validated"


@dataclass
class SpecOutcome:
    """One spec: validated only, or run (trained on a sample, or in full) and judged."""

    display: str
    name: str
    model: str | None = None
    status: str = VALIDATED
    problems: list[str] = field(default_factory=list)    # spec validation, FILE:LINE: field
    failures: list[str] = field(default_factory=list)    # why the job fails for this spec
    run: dict[str, Any] | None = None                    # the runner's summary
    verdict: dict[str, Any] | None = None                # evaluate.gate's verdict.json
    validation: dict[str, Any] | None = None             # validate.expectations' result
    rows: dict[str, Any] = field(default_factory=dict)   # ingest's row counts
    sample: str | None = None                            # "20,000 rows (seed 0)"
    plots: dict[str, Path] = field(default_factory=dict)  # name -> file beside the report
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # roc, roc_champion
    lineage: dict[str, Any] = field(default_factory=dict)
    changes: Any = None                                  # runtime.ci_changes.SpecChanges
    base: Any = None                                     # ci pr: ci.base_run.BaseRun
    base_checks: list[dict[str, Any]] = field(default_factory=list)  # quality vs the base
    kept_checks: list[dict[str, Any]] = field(default_factory=list)  # the verdict's others
    moved: list[str] = field(default_factory=list)       # ci main: what the registry did
    rollout: dict[str, Any] | None = None                # ci main: the rollout it began


@dataclass
class CiOutcome:
    mode: str                                            # "pr" | "main"
    head: dict[str, Any]                                 # git: commit, short, branch, dirty
    specs: list[SpecOutcome]
    duration_s: float = 0.0
    base_ref: str | None = None
    report_only: bool = False

    @property
    def failures(self) -> list[str]:
        return [f"{s.display}: {f}" for s in self.specs for f in s.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def exit_code(self) -> int:
        """1 when a gate, a validation or a step failed, unless the run is report-only."""
        return 0 if self.passed or self.report_only else 1
