"""The `ci:` block: how `loopline ci pr` trains a spec on a pull request (a seeded sample, the
same split rules) and whether a failed gate fails the job.

Spec objects only (immutable, no I/O); `runtime.ci` runs them and writes the report.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_SAMPLE_ROWS = 20_000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sample(_Frozen):
    """A seeded sample of the ingested rows, drawn after `derive` and `filter` and before the
    split, so train and eval keep the spec's split rule (a time split stays a time split)."""

    rows: int | None = Field(None, ge=100, description="At most this many rows.")
    fraction: float | None = Field(None, gt=0, le=1, description="This share of the rows.")
    seed: int = Field(0, description="Same seed, same rows, same metrics.")

    @model_validator(mode="before")
    @classmethod
    def _one_size(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("rows") is not None and value.get("fraction") is not None:
                raise ValueError("give rows or fraction, not both")
            if value.get("rows") is None and value.get("fraction") is None:
                return {**value, "rows": DEFAULT_SAMPLE_ROWS}
        return value

    def describe(self) -> str:
        size = f"{self.rows:,} rows" if self.rows is not None else f"{self.fraction:.0%}"
        return f"{size}, seed {self.seed}"


class CiSpec(_Frozen):
    """`loopline ci pr|main` for this spec."""

    pr: bool = Field(True, description="Train and gate this spec on pull requests (a spec "
                                       "without an evaluate.gate step is only validated).")
    sample: Sample = Field(default_factory=Sample,
                           description="The pull request's training sample (default 20,000 "
                                       "rows, seed 0).")
    report_only: bool = Field(False, description="Report a failed gate or validation without "
                                                 "failing the job.")
