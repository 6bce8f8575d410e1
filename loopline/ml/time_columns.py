"""A time column as UTC timestamps — typed by what it holds, or by `time_format`, never guessed.

pandas reads an integer column as nanoseconds since 1970 when asked for datetimes, so a column
of years (1997) silently becomes 1970-01-01T00:00:00.000001997. Here each kind is recognised
explicitly; anything that fits none, or more than one, is refused with the column named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("auto", "timestamp", "year", "epoch_s", "epoch_ms")
# Plausible ranges (2001-09 .. 2286) that cannot be mistaken for each other.
_YEARS = (1000, 9999)
_EPOCH_S = (1e9, 1e10)
_EPOCH_MS = (1e12, 1e13)


class TimeColumnError(ValueError):
    """The column cannot be read as times as asked; the message says what to set."""


def is_time_format(value: str) -> bool:
    """A known kind, or a strftime pattern such as `%d/%m/%Y`."""
    return value in FORMATS or "%" in value


def to_utc(values: pd.Series, time_format: str = "auto") -> pd.Series:
    """UTC timestamps from years, epoch seconds or milliseconds, date strings or timestamps."""
    import pandas as pd

    kind = time_format if time_format != "auto" else _detect(values)
    try:
        if kind == "year":
            years = pd.to_numeric(values, errors="raise")
            return pd.to_datetime(years.astype("Int64").astype("string"), format="%Y", utc=True)
        if kind in ("epoch_s", "epoch_ms"):
            return pd.to_datetime(pd.to_numeric(values, errors="raise"),
                                  unit="s" if kind == "epoch_s" else "ms", utc=True)
        if "%" in kind:
            return pd.to_datetime(values, format=kind, utc=True)
        if pd.api.types.is_datetime64_any_dtype(values):
            return pd.to_datetime(values, utc=True)
        return pd.to_datetime(values, format="ISO8601", utc=True)  # strings: ISO 8601 only
    except (ValueError, TypeError, OverflowError) as exc:
        example = next((v for v in values.dropna().head(1)), None)
        reason = str(exc).splitlines()[0]
        raise TimeColumnError(f"cannot be read as {kind} times (e.g. {example!r}): {reason}; "
                              f"set time_format to one of {', '.join(FORMATS[1:])} or a "
                              "strftime pattern") from None


def _detect(values: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        return "timestamp"
    if pd.api.types.is_bool_dtype(values):
        raise TimeColumnError("holds booleans, not times")
    if not pd.api.types.is_numeric_dtype(values):
        return "timestamp"  # strings: parsed as dates, and refused if they are not
    present = values.dropna()
    if present.empty:
        return "timestamp"
    if not (present == present.round()).all():
        raise TimeColumnError("holds fractional numbers; set time_format (epoch_s, epoch_ms)")
    low, high = float(present.min()), float(present.max())
    for kind, (start, end) in (("year", _YEARS), ("epoch_s", _EPOCH_S),
                               ("epoch_ms", _EPOCH_MS)):
        if start <= low and high < end:
            return kind
    raise TimeColumnError(f"holds numbers from {low:g} to {high:g}, which are neither years, "
                          "epoch seconds nor epoch milliseconds; set time_format")
