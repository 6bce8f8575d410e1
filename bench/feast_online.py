"""Single-entity online lookups through Feast: SQLite (embedded) and Redis (127.0.0.1)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.integrations.feast import open_store

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def lookups(store, calls: int) -> list[float]:  # type: ignore[no-untyped-def]
    service = store.get_feature_service("flights_training")
    rng = np.random.default_rng(0)
    origins, carriers = ["EWR", "JFK", "LGA"], ["UA", "B6", "EV", "DL", "AA", "MQ"]
    store.get_online_features(features=service, entity_rows=[{"origin": "JFK",
                                                              "carrier": "UA"}])
    times = []
    for _ in range(calls):
        row = {"origin": origins[rng.integers(3)], "carrier": carriers[rng.integers(6)]}
        started = time.perf_counter()
        store.get_online_features(features=service, entity_rows=[row]).to_dict()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(calls: int = 1000) -> None:
    print(f"## Feast online lookups, one entity row, {calls} calls, service flights_training")
    with tempfile.TemporaryDirectory() as tmp:
        redis = '  type: redis\n  connection_string: "127.0.0.1:6379,db=1"'
        for name, online in (("sqlite", None), ("redis", redis)):
            repo = Path(tmp) / name
            shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("registry.db", "online.db"))
            if online:
                config = (repo / "feature_store.yaml").read_text()
                (repo / "feature_store.yaml").write_text(
                    config.replace("  type: sqlite\n  path: data/online.db", online))
            store = open_store(repo)
            store.materialize(start_date=pd.Timestamp("2013-12-01", tz="UTC").to_pydatetime(),
                              end_date=pd.Timestamp("2014-01-02", tz="UTC").to_pydatetime())
            try:
                times = lookups(store, calls)
            except Exception as exc:  # noqa: BLE001 - e.g. no Redis on this machine
                print(f"{name:7} unavailable: {exc}")
                continue
            print(f"{name:7} p50 {np.percentile(times, 50):.2f} ms   "
                  f"p99 {np.percentile(times, 99):.2f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
