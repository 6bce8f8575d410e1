"""What one `loopline ci` run found, per spec: the facts the report is written from.

Plain data (no I/O) so the report can be rendered, and tested, from any outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A spec's result in the report, worst first.
ERROR, FAILED, PASSED, VALIDATED = "error", "failed", "passed", "validated"
# Failures a report-only spec reports without failing the job: the verdicts on the model and
# the data. A crash or a spec that does not validate always fails it.
SOFT = ("gate: ", "data validation: ")


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
    report_only: bool = False                            # its gate and data verdicts soft
    crashed: bool = False                                # a step or Loopline itself failed

    def settle(self) -> None:
        """The status from what was found: a crash is an error, a failure a failure."""
        self.status = ERROR if self.crashed or self.problems else \
            FAILED if self.failures else PASSED if self.run is not None else self.status

    def blocking(self) -> list[str]:
        """The failures that fail the job."""
        return [f for f in self.failures
                if not (self.report_only and f.startswith(SOFT))]


@dataclass
class CiOutcome:
    mode: str                                            # "pr" | "main"
    head: dict[str, Any]                                 # git: commit, short, branch, dirty
    specs: list[SpecOutcome]
    duration_s: float = 0.0
    base_ref: str | None = None

    @property
    def failures(self) -> list[str]:
        return [f"{s.display}: {f}" for s in self.specs for f in s.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def report_only(self) -> bool:
        """Every failure is one that report-only specs only report."""
        return bool(self.failures) and not any(s.blocking() for s in self.specs)

    def exit_code(self) -> int:
        """1 when a gate, a data validation, a step or a spec failed, except the verdicts of
        report-only specs."""
        return 1 if any(s.blocking() for s in self.specs) else 0
