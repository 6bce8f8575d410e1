"""The server's Prometheus metrics (names: docs/serving.md; Grafana: deploy/grafana/).

With several worker processes each writes its own files under PROMETHEUS_MULTIPROC_DIR and
`/metrics` merges them, so a scrape sees the whole server, not one worker.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (.001, .0025, .005, .0075, .01, .025, .05, .075, .1, .25, .5, 1, 2.5)
PREDICTION_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_DIR_ENV = "LOOPLINE_METRICS_DIR"  # set by `loopline serve --workers N` only


class Metrics:
    def __init__(self) -> None:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        prometheus_client.disable_created_metrics()  # half the lines, nothing Grafana reads
        self.registry = CollectorRegistry(auto_describe=True)
        # Our own variable decides: importing Feast sets PROMETHEUS_MULTIPROC_DIR to a folder
        # of its own (feast/metrics.py), and a scrape that followed it would find nothing.
        self.folder = os.environ.get(WORKERS_DIR_ENV)
        multi = self.multiprocess = bool(self.folder)
        _pin_value_class(self.folder)
        if not multi:
            from prometheus_client import PLATFORM_COLLECTOR, PROCESS_COLLECTOR

            self.registry.register(PROCESS_COLLECTOR)
            self.registry.register(PLATFORM_COLLECTOR)
        r = self.registry
        self.requests = Counter("loopline_requests", "HTTP requests answered.",
                                ["model", "version", "route", "endpoint", "status"], registry=r)
        self.predictions = Counter("loopline_predictions", "Rows predicted.",
                                   ["model", "version", "route"], registry=r)
        self.latency = Histogram("loopline_request_latency_seconds", "Request latency.",
                                 ["model", "version", "route", "endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.prediction = Histogram("loopline_prediction", "Predicted values.",
                                    ["model", "version"], buckets=PREDICTION_BUCKETS, registry=r)
        self.missing = Counter("loopline_feature_missing", "Feature values the online store "
                               "did not have.", ["model", "feature"], registry=r)
        self.cache = Counter("loopline_feature_cache", "Online feature lookups by cache result.",
                             ["model", "result"], registry=r)
        live = {"multiprocess_mode": "livemax"} if multi else {}
        self.info = Gauge("loopline_model_info", "1 for each version served, by route.",
                          ["model", "version", "route"], registry=r, **live)
        self.swaps = Counter("loopline_model_swaps", "Versions swapped in without a restart.",
                             ["model"], registry=r)
        self.workers = Gauge("loopline_workers", "Server worker processes.", ["model"],
                             registry=r, **({"multiprocess_mode": "livesum"} if multi else {}))
        self.drift_psi = Gauge("loopline_drift_psi", "Latest drift score per feature.",
                               ["model", "feature"], registry=r, **live)
        self.live_metric = Gauge("loopline_live_metric", "Model metric on labelled traffic.",
                                 ["model", "version", "metric"], registry=r, **live)

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets: this process, or every worker's files merged."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        registry: Any = self.registry
        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.folder)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _pin_value_class(folder: str | None) -> None:
    """prometheus_client picks in-memory or file-backed values once, when it is first
    imported, from PROMETHEUS_MULTIPROC_DIR, which importing Feast sets to a folder of its
    own. Whichever was imported first would decide (and a file-backed value whose variable
    was unset later fails on its first label), so the server decides instead, for the
    whole process: files in our folder with several workers, memory otherwise."""
    from prometheus_client import values

    if folder:
        os.environ[MULTIPROC_ENV] = folder
        values.ValueClass = values.MultiProcessValue()
    else:
        values.ValueClass = values.MutexValue
