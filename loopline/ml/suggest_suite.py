"""`loopline suggest-suite`: a starting expectation suite from a data sample, for people to edit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MAX_SET_SIZE = 30


def suggest_suite(frame: pd.DataFrame, sample_rows: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """Types, null rates, numeric ranges and small categorical sets seen in the sample."""
    import pandas as pd

    if len(frame) > sample_rows:
        frame = frame.sample(sample_rows, random_state=seed)
    expectations: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": list(map(str, frame.columns)), "exact_match": False}},
    ]
    for column in frame.columns:
        series = frame[column]
        null_rate = float(series.isna().mean())
        if null_rate == 0:
            expectations.append({"type": "expect_column_values_to_not_be_null",
                                 "kwargs": {"column": column}})
        else:  # allow some slack over what the sample showed
            mostly = max(0.0, round(1 - min(1.0, null_rate * 1.5 + 0.01), 3))
            expectations.append({"type": "expect_column_values_to_not_be_null",
                                 "kwargs": {"column": column, "mostly": mostly}})
        if pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_numeric_dtype(series):
            expectations.append({"type": "expect_column_values_to_be_between",
                                 "kwargs": {"column": column, "min_value": _num(series.min()),
                                            "max_value": _num(series.max())}})
        elif series.nunique(dropna=True) <= MAX_SET_SIZE:
            values = sorted(str(v) for v in series.dropna().unique())
            expectations.append({"type": "expect_column_values_to_be_in_set",
                                 "kwargs": {"column": column, "value_set": values}})
    return {"name": "suggested", "expectations": expectations,
            "meta": {"generated_by": "loopline suggest-suite", "rows_sampled": len(frame)}}


def _num(value: Any) -> float | int | None:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float
