"""The request schema read from a model's own transform, micro-batching and the router."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from loopline.ml.feature_transform import FeatureTransform
from loopline.serving.batcher import Batcher
from loopline.serving.predictor import Job
from loopline.serving.router import Router
from loopline.serving.schema import InputSchema, schema_for


class _Pipeline:
    def __init__(self, transform: FeatureTransform) -> None:
        self.named_steps = {"features": transform}


def _schema() -> InputSchema:
    transform = FeatureTransform(numeric={"distance": "standard", "temp": "standard"},
                                 categorical={"carrier": {"encoding": "onehot"},
                                              "origin": {"encoding": "onehot"}},
                                 date_parts={"time_hour": ["dayofweek"]},
                                 derived={"dep_hour": "sched_dep_time // 100"})
    feast = {"service": "flights_training", "features": ["temp"]}
    return schema_for(_Pipeline(transform), {}, feast, keys=("origin", "carrier"))


def test_the_schema_is_the_transforms_raw_columns_minus_store_features() -> None:
    schema = _schema()
    assert schema.fields == {"carrier": "string", "distance": "number", "origin": "string",
                             "sched_dep_time": "number", "time_hour": "timestamp"}
    assert schema.features == ("temp",)
    assert "distance" in schema.nullable and "origin" not in schema.nullable


def test_every_bad_field_is_named_at_once() -> None:
    schema = _schema()
    clean, errors = schema.check({"carrier": "UA", "origin": "EWR", "distance": 719,
                                  "sched_dep_time": 800, "time_hour": "2013-07-01T12:00:00Z"},
                                 "inputs")
    assert errors == [] and clean["time_hour"] == datetime(2013, 7, 1, 12, tzinfo=UTC)
    _, errors = schema.check({"carrier": "", "origin": None, "distance": True,
                              "time_hour": "2013-07-01", "temp": 3, "distnce": 1}, "inputs")
    assert [(e.field, e.problem) for e in errors] == [
        ("inputs.carrier", "expected a non-empty string, got ''"),
        ("inputs.distance", "expected a number, got True"),
        ("inputs.origin", "must not be null (string)"),
        ("inputs.sched_dep_time", "required (number)"),
        ("inputs.time_hour", "'2013-07-01' has no time zone; add Z or +00:00"),
        ("inputs.temp", "comes from the feature store, not the request"),
        ("inputs.distnce", "unknown field (did you mean 'distance'?)"),
    ]
    _, errors = schema.check(["not", "a", "row"], "rows[3]")
    assert errors[0].field == "rows[3]"


class _Model:
    number = "1"


def _job(rows: int) -> Job:
    return Job([{"x": i} for i in range(rows)], _Model(), "champion")  # type: ignore[arg-type]


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_rows() -> None:
    calls: list[int] = []

    def run(jobs: list[Job]) -> None:
        import time

        calls.append(sum(len(j.rows) for j in jobs))
        time.sleep(0.02)  # a model call: requests arriving meanwhile form the next batch
        for job in jobs:
            job.scores = [float(r["x"]) for r in job.rows]

    async def main() -> list[Job]:
        batcher = Batcher(run, max_batch=32, max_wait_ms=0)
        jobs = [_job(1 + i % 3) for i in range(40)]
        done = await asyncio.gather(*(batcher.submit(j) for j in jobs))
        batcher.close()
        return list(done)

    done = asyncio.run(main())
    assert all(j.scores == [float(i) for i in range(len(j.rows))] for j in done)
    assert sum(calls) == sum(len(j.rows) for j in done)
    assert len(calls) < 10 and max(calls) <= 32 + 2  # batched, never far above max_batch


def test_a_failing_model_call_fails_its_requests_not_the_server() -> None:
    def run(jobs: list[Job]) -> None:
        raise RuntimeError("model exploded")

    async def main() -> tuple[Job, Job]:
        batcher = Batcher(run, max_batch=8, max_wait_ms=0)
        first = await batcher.submit(_job(1))
        second = await batcher.submit(_job(2))
        batcher.close()
        return first, second

    first, second = asyncio.run(main())
    assert first.error == second.error == "RuntimeError: model exploded"


def test_a_swap_is_seen_whole_by_the_next_request() -> None:
    old: Any = type("V", (), {"number": "1"})()
    new: Any = type("V", (), {"number": "2"})()
    router = Router()
    assert not router.ready
    assert router.swap("champion", old) is None
    assert router.pick("EWR|UA") == ("champion", old)
    assert router.swap("champion", new) is old
    assert router.pick("EWR|UA")[1] is new and router.shadows("EWR|UA") == []


@pytest.mark.parametrize("value", ["90", "45s", "30m", "1h", "2d", 5])
def test_durations(value: Any) -> None:
    from loopline.spec.durations import duration_seconds

    assert duration_seconds(value) > 0


def test_the_model_thread_runs_openmp_with_the_spec_s_thread_count() -> None:
    """One OpenMP thread per model call by default: on 2 cores, fanning a one-row call out
    cost 37-52 % of throughput (bench/serving.py)."""
    import sklearn.ensemble  # noqa: F401 - loads OpenMP (scikit-learn's libgomp)
    from threadpoolctl import threadpool_info

    seen: list[set[int]] = []

    def run(jobs: list[Job]) -> None:
        seen.append({lib["num_threads"] for lib in threadpool_info()
                     if lib["user_api"] == "openmp"})

    async def main() -> None:
        batcher = Batcher(run, max_batch=8, max_wait_ms=0, threads=1)
        await batcher.submit(_job(1))
        batcher.close()

    asyncio.run(main())
    assert seen == [{1}]


class _TorchBundle:
    """The shape of loopline.ml.torch_model.TabularModel: the transform is an attribute."""

    def __init__(self, transform: FeatureTransform) -> None:
        self.transform = transform


@pytest.mark.parametrize("wrap", [_Pipeline, _TorchBundle])
def test_the_warm_up_row_takes_the_fitted_fills_of_either_model_kind(wrap: Any) -> None:
    import pandas as pd

    from loopline.serving.server import _warm_rows

    transform = FeatureTransform(numeric={"distance": "standard", "temp": "standard"},
                                 categorical={"origin": {"encoding": "onehot"}})
    transform.fit(pd.DataFrame({"distance": [100.0, 300.0, 500.0], "temp": [50.0, 60.0, 70.0],
                                "origin": ["EWR", "JFK", "LGA"]}))
    model = wrap(transform)
    served = type("Served", (), {"model": model, "schema": schema_for(
        model, {}, {"service": "s", "features": ["temp"]}, keys=("origin",))})()
    (row,) = _warm_rows(served).to_dict("records")
    fill = transform.numeric_stats_["distance"][0]
    assert row["distance"] == fill and fill != 0.0  # the fitted fill, not a made-up zero
    assert row["temp"] is None and row["origin"] == "x"
    transform.transform(_warm_rows(served))  # the warm-up row goes through the real transform


def test_the_warm_up_reads_the_online_store_once_before_traffic() -> None:
    """Feast's first online read opens the store (~240 ms on the example): the warm-up pays
    it, with the model's own join keys, so the first request does not."""
    import pandas as pd

    from loopline.serving.server import _warm_up

    transform = FeatureTransform(numeric={"distance": "standard", "temp": "standard"},
                                 categorical={"origin": {"encoding": "onehot"}})
    transform.fit(pd.DataFrame({"distance": [100.0, 300.0], "temp": [50.0, 60.0],
                                "origin": ["EWR", "JFK"]}))
    lookups: list[list[dict[str, Any]]] = []
    predicted: list[Any] = []

    class Features:
        keys = ("origin",)

        def lookup(self, rows: list[dict[str, Any]]) -> None:
            lookups.append(rows)

    model = _Pipeline(transform)
    served = type("Served", (), {
        "model": model, "features": Features(), "predict": staticmethod(predicted.append),
        "schema": schema_for(model, {}, {"service": "s", "features": ["temp"]},
                             keys=("origin",))})()
    _warm_up(served)
    assert lookups == [[{"origin": "x"}]] and len(predicted) == 1
