"""Evidently's HTML data-drift report, rendered from a sample.

Evidently recomputes every column several times while rendering (minutes for a million
rows); the verdict never depends on it. The report shows the same methods and thresholds on
an evenly drawn sample, and says so in its file name and in the JSON summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def render(reference: pd.DataFrame, current: pd.DataFrame, numeric: Sequence[str],
           categorical: Sequence[str], methods: Mapping[str, str],
           thresholds: Mapping[str, float], path: Path, sample_rows: int,
           seed: int = 0) -> int:
    """Write the HTML report; return how many rows per side it was drawn from."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numeric, *categorical]
    definition = DataDefinition(numerical_columns=list(numeric),
                                categorical_columns=list(categorical))
    ref = Dataset.from_pandas(_sample(reference[columns], sample_rows, seed), definition)
    cur = Dataset.from_pandas(_sample(current[columns], sample_rows, seed), definition)
    preset = DataDriftPreset(columns=columns, per_column_method=dict(methods),
                             per_column_threshold=dict(thresholds))
    snapshot = Report([preset], include_tests=True).run(current_data=cur, reference_data=ref)
    snapshot.save_html(str(path))
    return min(sample_rows, max(len(reference), len(current)))
