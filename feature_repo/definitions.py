"""Entities, feature views and the feature service of the flights example."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"  # duckdb wants absolute source paths

# By path, not through sys.path: a process may hold several copies of this repo, and a cached
# `sources` module would build another copy's files.
_spec = importlib.util.spec_from_file_location(f"feature_sources_{abs(hash(HERE))}",
                                               HERE / "sources.py")
sources = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(sources)  # type: ignore[union-attr]
sources.ensure_sources(DATA)
WEATHER_COLUMNS = sources.WEATHER_COLUMNS

origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING,
                description="New York departure airport (EWR, JFK, LGA).")
carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING,
                 description="Two-letter airline code.")

weather_hourly = FeatureView(
    name="weather_hourly",
    entities=[origin],
    ttl=timedelta(hours=2),  # an observation older than two hours is no observation
    schema=[Field(name=column, dtype=Float32) for column in WEATHER_COLUMNS],
    source=FileSource(name="weather", path=str(DATA / sources.WEATHER),
                      timestamp_field="event_timestamp"),
    online=True,
    description="Hourly weather at the origin airport (nycflights13::weather).",
)

carrier_daily = FeatureView(
    name="carrier_daily",
    entities=[carrier],
    ttl=timedelta(days=3),
    schema=[Field(name="carrier_late_rate_7d", dtype=Float32),
            Field(name="carrier_flights_7d", dtype=Float32)],
    source=FileSource(name="carrier_daily", path=str(DATA / sources.CARRIER_DAILY),
                      timestamp_field="event_timestamp"),
    online=True,
    description="Each carrier's late-arrival rate over the 7 days before the flight's day.",
)

flights_training = FeatureService(
    name="flights_training", features=[weather_hourly, carrier_daily],
    description="Everything the late-arrival model reads from the feature store.")
