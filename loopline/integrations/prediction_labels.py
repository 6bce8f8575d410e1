"""Labels that arrive after the prediction (`loopline feedback`), kept beside the log:

    <artifacts root>/predictions/<model>/labels/<ms>-<pid>.parquet

Each file holds the key columns it was matched by (`request_id`, or entity keys such as
carrier, flight and time_hour) and one `label` column; files are never rewritten, written
whole before they appear (like the log), and a later file wins where two label the same
prediction (a correction). The log's reader never lists this folder (it reads only
`date=*/hour=*/`), so labels never mix into predictions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from loopline.integrations.filesystems import filesystem, write_whole
from loopline.integrations.prediction_log import REQUEST_ID, log_folder

if TYPE_CHECKING:
    import pandas as pd

LABEL = "label"
FOLDER = "labels"


def labels_folder(artifacts_root: str, model_name: str) -> str:
    return f"{log_folder(artifacts_root, model_name)}/{FOLDER}"


def write(folder: str, labels: pd.DataFrame) -> str:
    """One file of labels (key columns + `label`), complete before it appears."""
    name = f"{int(time.time() * 1000)}-{os.getpid()}.parquet"
    return write_whole(folder, name, lambda path: labels.to_parquet(path, index=False))


def read(folder: str) -> list[pd.DataFrame]:
    """Every labels file, oldest first (a file per `loopline feedback`; keys may differ)."""
    import pandas as pd

    fs, path = filesystem(folder)
    if not fs.isdir(path):
        return []
    names = sorted(n for n in fs.ls(path, detail=False)
                   if n.endswith(".parquet") and not n.rsplit("/", 1)[-1].startswith("."))
    frames = []
    for name in names:
        with fs.open(name, "rb") as handle:
            frames.append(pd.read_parquet(handle))
    return frames


def _aligned(log: pd.Series, labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Key columns made comparable: times as UTC instants (a CSV brings text), numbers as
    numbers, anything else as text."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(log) or pd.api.types.is_datetime64_any_dtype(labels):
        return _instants(log), _instants(labels)
    if pd.api.types.is_numeric_dtype(log) and pd.api.types.is_numeric_dtype(labels):
        return log.astype("float64"), labels.astype("float64")
    return log.astype(str), labels.astype(str)


def _instants(values: pd.Series) -> pd.Series:
    """UTC instants; text in any ISO-like form, row by row (a feed may mix `Z` and
    `+00:00`); what cannot be read matches nothing."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        instants = pd.to_datetime(values, utc=True)
    else:
        instants = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    return instants.astype("datetime64[ns, UTC]")  # one resolution on both sides of a merge


def _key_frames(log: pd.DataFrame, labels: pd.DataFrame,
                by: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key columns of both sides, each pair brought to one comparable type."""
    import pandas as pd

    left, right = pd.DataFrame(), pd.DataFrame()
    for key in by:
        a, b = _aligned(log[key].reset_index(drop=True), labels[key].reset_index(drop=True))
        left[key], right[key] = a, b
    return left, right


def match(log: pd.DataFrame, labels: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """The label of each log row from one labels frame keyed by `by` (NA where none)."""
    import pandas as pd

    left, right = _key_frames(log, labels, by)
    right[LABEL] = labels[LABEL].to_numpy()
    right = right.dropna(subset=list(by)).drop_duplicates(list(by), keep="last")
    joined = left.merge(right, on=list(by), how="left")  # one row per log row, in order
    return pd.Series(joined[LABEL].to_numpy(), index=log.index, dtype="object")


def matched(log: pd.DataFrame, labels: pd.DataFrame, by: Sequence[str]) -> int:
    """How many label rows name a prediction the log holds (`loopline feedback` says so)."""
    left, right = _key_frames(log, labels, by)
    found = right.merge(left.drop_duplicates(), on=list(by), how="left", indicator=True)
    return int((found["_merge"] == "both").sum())


def join(log: pd.DataFrame, labels: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """`log` with a `label` column: each labels frame matched by its own key columns, later
    frames overriding earlier ones. Frames keyed by columns the log lacks are skipped."""
    import pandas as pd

    out = log.copy()
    out[LABEL] = pd.Series(pd.NA, index=out.index, dtype="object")
    for frame in labels:
        by = [c for c in frame.columns if c != LABEL]
        if not by or LABEL not in frame.columns or any(c not in log.columns for c in by):
            continue
        found = match(log, frame, by)
        out[LABEL] = found.where(found.notna(), out[LABEL])
    return out


def keys_for(by: str) -> list[str]:
    """`--by request_id` or `--by carrier,flight,time_hour` as a list of columns."""
    keys = [k.strip() for k in by.split(",") if k.strip()]
    if not keys:
        raise ValueError("--by names no column; use request_id or entity key columns")
    return keys


__all__ = ["LABEL", "REQUEST_ID", "join", "keys_for", "labels_folder", "match", "matched",
           "read", "write"]
