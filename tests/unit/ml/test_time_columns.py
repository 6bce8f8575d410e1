"""Time columns are typed by what they hold, never parsed as nanoseconds by accident."""

from __future__ import annotations

import pandas as pd
import pytest

from loopline.ml.time_columns import TimeColumnError, to_utc

UTC = "datetime64[ns, UTC]"


@pytest.mark.parametrize(("values", "first"), [
    ([1997, 1998, 2001], "1997-01-01"),                          # integer years
    ([1997.0, None, 2001.0], "1997-01-01"),                      # years with a gap (floats)
    ([1_370_000_000, 1_380_000_000], "2013-05-31T11:33:20"),     # epoch seconds
    ([1_370_000_000_000, 1_380_000_000_000], "2013-05-31T11:33:20"),  # epoch milliseconds
    (["2013-01-01 05:00:00", "2013-02-01"], "2013-01-01T05:00:00"),   # date strings
    (pd.to_datetime(["2013-01-01T05:00:00"]), "2013-01-01T05:00:00"),  # naive timestamps
])
def test_each_kind_is_recognised(values: list[object], first: str) -> None:
    times = to_utc(pd.Series(values))
    assert times.iloc[0] == pd.Timestamp(first, tz="UTC")
    assert str(times.dtype).startswith("datetime64") and str(times.dt.tz) == "UTC"


def test_explicit_formats() -> None:
    assert to_utc(pd.Series(["25/12/2013"]), "%d/%m/%Y").iloc[0] == \
        pd.Timestamp("2013-12-25", tz="UTC")
    assert to_utc(pd.Series([1900]), "year").iloc[0] == pd.Timestamp("1900-01-01", tz="UTC")
    assert to_utc(pd.Series([86_400]), "epoch_s").iloc[0] == pd.Timestamp("1970-01-02", tz="UTC")


@pytest.mark.parametrize(("values", "message"), [
    ([5, 17, 300], "neither years, epoch seconds nor epoch milliseconds"),
    ([1997, 1_370_000_000], "neither years"),          # a mix is not guessed either
    ([1.5, 2.25], "fractional"),
    ([True, False], "booleans"),
    (["not a date", "2013-01-01"], "cannot be read as timestamp"),
])
def test_ambiguous_or_unreadable_columns_are_refused(values: list[object], message: str) -> None:
    with pytest.raises(TimeColumnError, match=message):
        to_utc(pd.Series(values))
