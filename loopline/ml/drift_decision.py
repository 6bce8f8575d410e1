"""Compare a current window with a reference, column by column, and decide what to do.

Pure data in, verdict out: no registry, no files. `drift.evidently` feeds it the champion's
training rows and the latest scored batches; tests feed it random splits and seasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loopline.ml.drift_methods import NUMERIC_ONLY, Method

if TYPE_CHECKING:
    import pandas as pd

    from loopline.ml.drift_stats import ColumnDrift

Action = Literal["none", "alert", "retrain"]
Severity = Literal["none", "warn", "retrain"]


class Thresholds(BaseModel):
    """`warn` marks a column drifted (an alert); `retrain` on any column starts retraining.
    For ks the numbers are p-values: lower means drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    warn: float = Field(gt=0)
    retrain: float = Field(gt=0)


# Common practice: PSI > 0.1 is a moderate shift worth a look, > 0.25 a major one.
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "psi": Thresholds(warn=0.1, retrain=0.25),
    "jensenshannon": Thresholds(warn=0.1, retrain=0.2),
    "wasserstein": Thresholds(warn=0.1, retrain=0.2),
    "ks": Thresholds(warn=0.05, retrain=0.001),
}


class DriftRules(BaseModel):
    """How columns are compared and when drift means retraining."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    numeric_method: Method = Field("psi", description="Method for numeric columns.")
    categorical_method: Method = Field("psi", description="Method for other columns.")
    methods: dict[str, Method] = Field(default_factory=dict,
                                       description="Column -> method, overriding the defaults.")
    thresholds: dict[Method, Thresholds] = Field(
        default_factory=dict, description="Per method warn/retrain; unset methods keep defaults.")
    drift_share: float = Field(0.5, gt=0, le=1,
                               description="Share of drifted columns that starts retraining.")

    def method_for(self, column: str, numeric: bool) -> str:
        if column in self.methods:
            return self.methods[column]
        return self.numeric_method if numeric else self.categorical_method

    def threshold(self, method: str) -> Thresholds:
        return self.thresholds.get(method) or DEFAULT_THRESHOLDS[method]  # type: ignore[index]


class SchemaMismatch(ValueError):
    """The current window cannot be compared with the reference; the message lists why."""


@dataclass(frozen=True)
class Verdict:
    columns: list[ColumnDrift]
    share_drifted: float
    action: Action
    reasons: list[str]

    def columns_json(self) -> dict[str, dict[str, Any]]:
        return {c.column: {k: v for k, v in c.to_json().items() if k != "column"}
                for c in self.columns}


def is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def check_schema(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> None:
    """Every compared column present in both, with the same kind (numeric or not)."""
    problems = []
    if missing := [c for c in columns if c not in current.columns]:
        problems.append(f"missing in the current data: {', '.join(missing)}")
    if missing_ref := [c for c in columns if c not in reference.columns]:
        problems.append(f"missing in the reference: {', '.join(missing_ref)}")
    changed = [f"{c} ({reference[c].dtype} in the reference, {current[c].dtype} now)"
               for c in columns if c in current.columns and c in reference.columns
               and is_numeric(reference[c]) != is_numeric(current[c])]
    if changed:
        problems.append(f"other types: {', '.join(changed)}")
    if problems:
        raise SchemaMismatch("current data does not match the reference: " + "; ".join(problems))


def compare(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
            rules: DriftRules, extra_reasons: Mapping[str, Severity] | None = None) -> Verdict:
    """Score every column and decide; `extra_reasons` (e.g. prediction drift, with its
    severity) add to the decision."""
    return decide(score_columns(reference, current, columns, rules), rules, extra_reasons)


def score_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                  rules: DriftRules) -> list[ColumnDrift]:
    """Check the schema once, then score each column with its method and thresholds."""
    from loopline.ml.drift_stats import column_drift

    check_schema(reference, current, columns)
    results = []
    for column in columns:
        numeric = is_numeric(reference[column])
        method = rules.method_for(column, numeric)
        if method in NUMERIC_ONLY and not numeric:
            raise SchemaMismatch(f"{column}: {method} needs a numeric column; "
                                 f"set methods.{column} to psi or jensenshannon")
        limits = rules.threshold(method)
        results.append(column_drift(column, method, reference[column].to_numpy(),
                                    current[column].to_numpy(), numeric, limits.warn,
                                    limits.retrain))
    return results


def decide(results: list[ColumnDrift], rules: DriftRules,
           extra_reasons: Mapping[str, Severity] | None = None) -> Verdict:
    """The action for scored columns: retrain on a major drift or a large drifted share."""
    drifted = [c for c in results if c.drifted]
    share = len(drifted) / len(results) if results else 0.0
    reasons: list[str] = []
    action: Action = "none"
    if major := [c.column for c in results if c.severity == "retrain"]:
        reasons.append(f"major drift in {', '.join(major)}")
    if results and share >= rules.drift_share:
        reasons.append(f"{share:.0%} of columns drifted (retrain at {rules.drift_share:.0%})")
    extra = dict(extra_reasons or {})
    if reasons or "retrain" in extra.values():
        action = "retrain"
    elif drifted or "warn" in extra.values():
        action = "alert"
    if drifted and not reasons:
        reasons.append(f"drift in {', '.join(c.column for c in drifted)}")
    reasons += [reason for reason, level in extra.items() if level != "none"]
    return Verdict(results, share, action, reasons)
