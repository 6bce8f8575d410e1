"""The `serve:` block: how `loopline serve` serves a spec's model and watches it live.

Spec objects only (immutable, no I/O); `loopline.serving` runs them. Durations take the same
forms as `retrain.cooldown` (90, "45s", "30m", "1h").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopline.spec.durations import Duration, duration_seconds


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MissingFeatures(_Frozen):
    """What a request gets when the online store has no value for a feature (an entity it
    never saw, an observation older than the view's TTL)."""

    policy: str = Field("default", pattern="^(default|refuse)$",
                        description="default: fill and predict (counted, logged); refuse: "
                                    "answer 422 naming the missing features.")
    defaults: dict[str, float | int | str | None] = Field(
        default_factory=dict,
        description="Feature -> value used under `default`; unnamed features stay null "
                    "(the model's own transform imputes them as it did in training).")


class Batching(_Frozen):
    """Concurrent requests predicted together: one model call for up to `max_batch` rows."""

    enabled: bool = True
    max_batch: int = Field(32, ge=1, le=4096, description="Rows per model call at most.")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, allow_inf_nan=False,
        description="How long a batch waits for company. 0: never wait; requests that "
                    "arrive while the model is busy form the next batch.")


class PredictionLogSpec(_Frozen):
    """Every prediction appended as Parquet under `<artifacts root>/predictions/<model>/`."""

    enabled: bool = True
    flush_rows: int = Field(2000, ge=1, le=1_000_000,
                            description="Write a file once this many rows are buffered.")
    flush_every: Duration = Field(
        "5s", description="...or once the oldest buffered row is this old.")

    @property
    def flush_every_s(self) -> float:
        return duration_seconds(self.flush_every)


class MonitoringSpec(_Frozen):
    """Live checks over the prediction log; a check alerts after `hold` breached evaluations
    in a row and resolves after `hold` healthy ones, so one bad minute does not flap."""

    every: Duration = Field("1m", description="How often `loopline serve` evaluates.")
    window: Duration = Field("5m", description="The log each evaluation reads.")
    hold: int = Field(3, ge=1, le=100, description="Evaluations in a row before a verdict flips.")
    min_requests: int = Field(50, ge=1, description="Fewer in the window: no verdict.")
    error_rate: float | None = Field(0.01, ge=0, le=1,
                                     description="Breached above this share of 5xx answers.")
    p99_ratio: float | None = Field(
        2.0, gt=0, description="Breached when p99 latency exceeds this multiple of the "
                               "baseline.")
    p99_baseline_ms: float | None = Field(
        None, gt=0, description="Default: the version's own p99 over its first window.")
    feature_missing: float | None = Field(
        0.05, ge=0, le=1, description="Breached when any feature is missing in more than "
                                      "this share of requests.")
    metric_max_drop: float | None = Field(
        0.05, ge=0, description="Breached when the primary metric on labelled predictions "
                                "falls this far below the version's evaluation.")
    min_labels: int = Field(200, ge=1, description="Labelled predictions needed for the metric.")
    metric_window: Duration = Field(
        "1d", description="The log the metric reads: labels arrive after the predictions "
                          "(`loopline feedback`), so it looks further back than `window`.")
    retrain_on: list[str] = Field(
        default_factory=lambda: ["metric"],
        description="Checks whose breach starts the spec's `retrain:` pipeline (same trigger "
                    "and records as drift).")

    @field_validator("retrain_on")
    @classmethod
    def _checks(cls, value: list[str]) -> list[str]:
        known = ("error_rate", "latency", "feature_missing", "metric")
        for name in value:
            if name not in known:
                raise ValueError(f"{name!r} is not a check; one of: {', '.join(known)}")
        return value

    @property
    def every_s(self) -> float:
        return duration_seconds(self.every)

    @property
    def window_s(self) -> float:
        return duration_seconds(self.window)

    @property
    def metric_window_s(self) -> float:
        return duration_seconds(self.metric_window)


class ServeSpec(_Frozen):
    """`loopline serve SPEC`: the registry's `model` alias behind a real HTTP server."""

    model: str = Field("champion", description="Registry alias (or version) to serve.")
    host: str = Field("127.0.0.1", description="Bind address; 0.0.0.0 in a container.")
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Server processes.")
    refresh: Duration = Field(
        "5s", description="How often a server checks the alias; a move is served without "
                          "a restart.")
    feature_store: str = Field(
        "feature_store.yaml", description="The Feast config (in the model's Feast repo) whose "
                                          "online store serves features; Redis in production.")
    feature_cache: Duration = Field(
        "1s", description="Online features per entity reused this long (0: off).")
    max_batch_rows: int = Field(1000, ge=1, le=100_000, description="Rows per batch request.")
    model_threads: int | None = Field(
        1, ge=1, le=256, description="OpenMP/BLAS threads of a model call; null: the "
                                     "libraries' default. Concurrency comes from batching and "
                                     "workers: fanning one small call out across cores cost "
                                     "37-52% of throughput (docs/benchmarks.md).")
    missing_features: MissingFeatures = Field(default_factory=MissingFeatures)
    batching: Batching = Field(default_factory=Batching)
    log: PredictionLogSpec = Field(default_factory=PredictionLogSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)

    @property
    def refresh_s(self) -> float:
        return duration_seconds(self.refresh)

    @property
    def feature_cache_s(self) -> float:
        return duration_seconds(self.feature_cache)
