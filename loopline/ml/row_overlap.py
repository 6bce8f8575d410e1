"""Which evaluation rows a model has already seen: rows are identified by the content of the
columns both frames share (a 64-bit hash per row), so the check is exact for rows that came
through the same pipeline, whatever window or split produced them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def seen_rows(frame: pd.DataFrame, seen: pd.DataFrame,
              ignore: Iterable[str] = ()) -> np.ndarray:
    """A boolean per row of `frame`: True where the same row (on the shared columns) is in
    `seen`. No shared column: nothing can be matched, so nothing counts as seen."""
    import pandas as pd

    columns = sorted((set(frame.columns) & set(seen.columns)) - set(ignore))
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    keys = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    known = pd.util.hash_pandas_object(seen[columns], index=False).to_numpy()
    return np.isin(keys, known)


def time_window(frame: pd.DataFrame) -> dict[str, str] | None:
    """The first timestamp column's range: what a model was judged on, for people to read."""
    import pandas as pd

    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]) and frame[column].notna().any():
            return {"column": str(column), "from": frame[column].min().isoformat(),
                    "to": frame[column].max().isoformat()}
    return None
