"""Feast's production stores: a SQL registry on PostgreSQL and the Redis online store, chosen by
the steps' `config` param (feature_repo/feature_store.production.yaml), against the real
services. Nothing lives on local disk: another process, in another folder, with its own copy
of the repo, sees the same definitions and serves the same features."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.components.contract import StepFailed
from loopline.integrations.feast import historical_features, open_store, repo_objects
from tests.support import REPO, run_cli, run_json, subprocess_cli
from tests.support.services import postgres_database, postgres_url

pytestmark = [pytest.mark.slow, pytest.mark.services]

PRODUCTION = "feature_store.production.yaml"
REGISTRY_ENV, REDIS_ENV = "LOOPLINE_FEAST_REGISTRY_URL", "LOOPLINE_FEAST_REDIS"
SECRET = "Sup3r-S3cret-pw"  # a password that must never reach a message


@pytest.fixture(scope="module")
def built_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's repo with its source files built once (copies below are cheap)."""
    target = _copy(REPO / "feature_repo", tmp_path_factory.mktemp("template") / "feature_repo")
    repo_objects(target)  # importing the definitions builds data/*.parquet
    return target


def _copy(repo: Path, target: Path, data: bool = True) -> Path:
    ignore = shutil.ignore_patterns("registry.db", "online.db", "__pycache__",
                                    *(() if data else ("data",)))
    shutil.copytree(repo, target, ignore=ignore)
    return target


@pytest.fixture
def feast_database() -> Iterator[str]:
    with postgres_database("loopline_feast") as database:
        yield database


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch, feast_database: str,
                   redis_db: int) -> dict[str, Any]:
    """The production config's variables, pointing at a fresh database and Redis db."""
    monkeypatch.setenv(REGISTRY_ENV, postgres_url(feast_database))
    monkeypatch.setenv(REDIS_ENV, f"127.0.0.1:6379,db={redis_db}")
    return {"database": feast_database, "redis_db": redis_db}


def _query(database: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _entity_rows() -> pd.DataFrame:
    """576 flights-like rows: every origin and four carriers, hourly over two days."""
    hours = pd.date_range("2013-03-01", periods=48, freq="h", tz="UTC")
    index = pd.MultiIndex.from_product([["EWR", "JFK", "LGA"], ["UA", "DL", "AA", "B6"], hours],
                                       names=["origin", "carrier", "time_hour"])
    return index.to_frame(index=False)


SPEC = f"""name: feastprod
steps:
  ingest:
    component: ingest.table
    params:
      source: rows.parquet
      time_column: time_hour
      split: {{by: time, eval_from: "2013-03-02"}}
  feast:
    component: features.feast
    inputs: {{train: ingest.train, eval: ingest.eval}}
    params: {{repo: feature_repo, service: flights_training, timestamp_column: time_hour,
              config: {PRODUCTION}}}
  materialize:
    component: features.materialize
    after: [feast]
    params: {{repo: feature_repo, config: {PRODUCTION}}}
"""


def _project(root: Path, built_repo: Path) -> Path:
    (root / "pipelines").mkdir(parents=True)
    _entity_rows().to_parquet(root / "rows.parquet", index=False)
    _copy(built_repo, root / "feature_repo")
    spec = root / "pipelines" / "p.yaml"
    spec.write_text(SPEC)
    return spec


def _statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {name: step["status"] for name, step in summary["steps"].items()}


def _registered_sources(database: str) -> dict[str, str]:
    from feast.protos.feast.core.DataSource_pb2 import DataSource

    return {name: DataSource.FromString(bytes(proto)).file_options.uri
            for name, proto in _query(database, "SELECT data_source_name, data_source_proto "
                                                "FROM data_sources WHERE project_id = 'flights'")}


def test_steps_share_registry_and_online_store_with_a_process_elsewhere(
        tmp_path: Path, built_repo: Path, production_env: dict[str, Any]) -> None:
    spec = _project(tmp_path / "project", built_repo)
    repo = spec.parents[1] / "feature_repo"
    summary = run_json(spec)
    assert summary["status"] == "succeeded", summary

    # The joined rows are the ones the embedded default stores give for the same rows.
    joined = pd.read_parquet(summary["steps"]["feast"]["outputs"]["train"])
    local = _copy(built_repo, tmp_path / "local" / "feature_repo")
    expected, names = historical_features(open_store(local), "flights_training",
                                          joined[["origin", "carrier", "time_hour"]],
                                          "time_hour")
    assert joined[["temp", "carrier_late_rate_7d"]].notna().all(axis=1).mean() > 0.9
    pd.testing.assert_frame_equal(joined[names], expected[names])

    # Nothing on local disk: no registry file, no SQLite online store in the project's repo...
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["carrier_daily.parquet",
                                                                 "weather.parquet"]
    # ...the definitions are rows in PostgreSQL, with repo-relative source paths...
    database = production_env["database"]
    views = dict(_query(database, "SELECT feature_view_name, feature_view_proto "
                                  "FROM feature_views WHERE project_id = 'flights'"))
    assert set(views) == {"weather_hourly", "carrier_daily"}
    assert _query(database, "SELECT feature_service_name FROM feature_services") == \
        [("flights_training",)]
    assert _registered_sources(database) == {"weather": "data/weather.parquet",
                                             "carrier_daily": "data/carrier_daily.parquet"}
    from feast.protos.feast.core.FeatureView_pb2 import FeatureView

    for proto in views.values():  # materialize recorded its interval there too
        assert FeatureView.FromString(bytes(proto)).meta.materialization_intervals
    # ...and the features are in Redis.
    import redis

    assert redis.Redis(host="127.0.0.1", port=6379, db=production_env["redis_db"]).dbsize() > 1

    # Another process, another folder, a copy of the repo without any data: same features.
    elsewhere = tmp_path / "elsewhere"
    copy = _copy(repo, elsewhere / "deploy" / "feature_repo", data=False)
    result = subprocess_cli("features", "get", "origin=JFK", "carrier=UA", "--repo", str(copy),
                            "--config", PRODUCTION, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout)
    weather = pd.read_parquet(repo / "data" / "weather.parquet")
    latest = weather[weather["origin"] == "JFK"].sort_values("event_timestamp").iloc[-1]
    assert served["temp"] == pytest.approx(float(latest["temp"]))
    carriers = pd.read_parquet(repo / "data" / "carrier_daily.parquet")
    rate = carriers[carriers["carrier"] == "UA"].sort_values("event_timestamp").iloc[-1]
    assert served["carrier_late_rate_7d"] == pytest.approx(float(rate["carrier_late_rate_7d"]))
    assert not (copy / "data" / "online.db").exists()
    assert not (copy / "data" / "registry.db").exists()

    # The config file's content is in both steps' cache keys, not only its name.
    assert set(_statuses(run_json(spec)).values()) == {"cached"}
    config = repo / PRODUCTION
    config.write_text(config.read_text().replace("cache_ttl_seconds: 60",
                                                 "cache_ttl_seconds: 30"))
    assert _statuses(run_json(spec)) == {"ingest": "cached", "feast": "succeeded",
                                         "materialize": "succeeded"}


READ = """
import json, sys
from pathlib import Path
import pandas as pd
from loopline.integrations.feast import historical_features, open_store
rows = pd.DataFrame({"origin": ["JFK", "LGA"], "carrier": ["UA", "DL"],
                     "time_hour": pd.to_datetime(["2013-03-01 10:00", "2013-03-02 12:00"],
                                                 utc=True)})
out, _ = historical_features(open_store(Path(sys.argv[1]), config=sys.argv[2]),
                             "flights_training", rows, "time_hour")
print(json.dumps(out["temp"].astype(float).tolist()))
"""

_ROWS = pd.DataFrame({"origin": ["JFK", "LGA"], "carrier": ["UA", "DL"],
                      "time_hour": pd.to_datetime(["2013-03-01 10:00", "2013-03-02 12:00"],
                                                  utc=True)})


def test_each_process_reads_its_own_copy_of_the_source_files(
        tmp_path: Path, built_repo: Path, production_env: dict[str, Any]) -> None:
    """A pod at one path applies, a pod at another applies, the first reads: it must read its
    own files (an absolute path in the shared registry would send it to the other's)."""
    here = _copy(built_repo, tmp_path / "here" / "feature_repo")
    there = _copy(built_repo, tmp_path / "there" / "a" / "b" / "feature_repo")
    weather = pd.read_parquet(there / "data" / "weather.parquet")
    weather["temp"] = weather["temp"] + 1000  # the other copy's data differ: who reads what
    weather.to_parquet(there / "data" / "weather.parquet", index=False)

    store = open_store(here, config=PRODUCTION)
    mine, _ = historical_features(store, "flights_training", _ROWS, "time_hour")
    other = subprocess.run([sys.executable, "-c", READ, str(there), PRODUCTION],
                           cwd=tmp_path / "there", capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr[-3000:]
    theirs = json.loads(other.stdout.strip().splitlines()[-1])
    assert theirs == pytest.approx([t + 1000 for t in mine["temp"].astype(float)])
    store.refresh_registry()  # after the other process's apply
    again, _ = historical_features(store, "flights_training", _ROWS, "time_hour")
    pd.testing.assert_series_equal(again["temp"], mine["temp"])
    assert _registered_sources(production_env["database"])["weather"] == "data/weather.parquet"
    assert mine["temp"].notna().all()


def _row_versions(database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each registry table's rows by physical version (xmin changes on every UPDATE)."""
    tables = ("projects", "entities", "data_sources", "feature_views", "feature_services",
              "feature_view_version_history")
    return {table: sorted(_query(database, f"SELECT xmin::text, * FROM {table}"))
            for table in tables}


APPLY = """
import sys, time
from pathlib import Path
from loopline.integrations.feast import open_store, repo_objects
import feast.infra.registry.sql  # imports paid before the start line
repo = Path(sys.argv[1])
repo_objects(repo)
(Path(sys.argv[2]) / f"ready-{sys.argv[3]}").touch()
while not (Path(sys.argv[2]) / "go").exists():
    time.sleep(0.01)
open_store(repo, config=sys.argv[4])
print("applied")
"""


def test_concurrent_first_applies_and_idempotent_reapplies(
        tmp_path: Path, built_repo: Path, production_env: dict[str, Any]) -> None:
    """Pods applying the same definitions to an empty registry at once all succeed (Feast
    alone fails some with unique violations on its tables); later applies write nothing."""
    gate = tmp_path / "gate"
    gate.mkdir()
    repos = [_copy(built_repo, tmp_path / f"pod{i}" / "feature_repo") for i in range(5)]
    pods = [subprocess.Popen([sys.executable, "-c", APPLY, str(repo), str(gate), str(i),
                              PRODUCTION], cwd=repo.parent, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for i, repo in enumerate(repos)]
    deadline = time.time() + 240
    while len(list(gate.glob("ready-*"))) < len(pods) and time.time() < deadline:
        assert all(pod.poll() is None for pod in pods), [p.communicate() for p in pods]
        time.sleep(0.05)
    (gate / "go").touch()
    for pod in pods:
        out, err = pod.communicate(timeout=240)
        assert pod.returncode == 0 and "applied" in out, err[-3000:]
    database = production_env["database"]
    assert sorted(_query(database, "SELECT feature_view_name, version_number "
                                   "FROM feature_view_version_history")) == \
        [("carrier_daily", 0), ("weather_hourly", 0)]

    store = open_store(repos[0], config=PRODUCTION)
    store.materialize(start_date=pd.Timestamp("2013-12-29", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp("2013-12-31", tz="UTC").to_pydatetime())
    before = _row_versions(database)
    open_store(repos[1], config=PRODUCTION)  # another path, after a materialization
    open_store(repos[0], config=PRODUCTION)
    assert _row_versions(database) == before


def test_unset_variable_is_named_and_no_value_is_shown(
        tmp_path: Path, built_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy(built_repo, tmp_path / "feature_repo")
    url = f"postgresql+psycopg2://loopline:{SECRET}@127.0.0.1:1/feast"
    monkeypatch.setenv(REGISTRY_ENV, url)
    monkeypatch.delenv(REDIS_ENV, raising=False)
    monkeypatch.setenv("UNRELATED_TOKEN", "tok-do-not-print")
    with pytest.raises(StepFailed) as failed:
        open_store(repo, config=PRODUCTION)
    message = str(failed.value)
    assert f"reads environment variable(s) {REDIS_ENV}, not set" in message
    assert REGISTRY_ENV not in message and SECRET not in message and "tok-" not in message

    # The CLI says the same in one line, without a traceback or a value.
    result = subprocess_cli("features", "get", "origin=JFK", "--repo", str(repo), "--config",
                            PRODUCTION, cwd=tmp_path)
    assert result.returncode == 1
    assert f"error: Feast config {PRODUCTION} reads environment variable(s) {REDIS_ENV}" \
        in result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output and SECRET not in output and "tok-" not in output

    # Set, but the registry is unreachable: the error says so, still without the password.
    monkeypatch.setenv(REDIS_ENV, "127.0.0.1:6379,db=0")
    with pytest.raises(StepFailed) as failed:
        open_store(repo, config=PRODUCTION)
    message = str(failed.value)
    assert "could not be opened: OperationalError" in message, message
    assert SECRET not in message
    monkeypatch.setenv(REGISTRY_ENV, url.replace("psycopg2", "psycopg"))  # psycopg 3
    with pytest.raises(StepFailed) as failed:
        open_store(repo, config=PRODUCTION, apply=False)
    assert SECRET not in str(failed.value)
    if not _installed("psycopg"):
        assert "postgresql+psycopg2://" in str(failed.value)  # the hint


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_missing_config_file_is_named(tmp_path: Path, built_repo: Path) -> None:
    repo = _copy(built_repo, tmp_path / "project" / "feature_repo")
    with pytest.raises(StepFailed, match=r"Feast config .*feature_store\.staging\.yaml does "
                                         r"not exist"):
        open_store(repo, config="feature_store.staging.yaml")
    spec = tmp_path / "project" / "pipelines" / "p.yaml"
    spec.parent.mkdir()
    (tmp_path / "project" / "rows.parquet").touch()
    spec.write_text(SPEC.replace(PRODUCTION, "feature_store.staging.yaml"))
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2
    assert "steps.feast.params.config: no Feast config feature_store.staging.yaml in" in err
    assert "steps.materialize.params.config: no Feast config feature_store.staging.yaml" in err
    code, _, err = run_cli("features", "get", "origin=JFK", "--repo", str(repo), "--config",
                           "feature_store.staging.yaml")
    assert code == 2 and "no Feast config feature_store.staging.yaml" in err


def test_production_config_holds_no_connection_string() -> None:
    """Passwords come from the environment: the file only names the variables."""
    import yaml

    config = yaml.safe_load((REPO / "feature_repo" / PRODUCTION).read_text())
    assert config["project"] == "flights"
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["path"] == f"${{{REGISTRY_ENV}}}"
    assert config["online_store"] == {"type": "redis", "connection_string": f"${{{REDIS_ENV}}}"}
    assert config["offline_store"]["type"] == "duckdb"
