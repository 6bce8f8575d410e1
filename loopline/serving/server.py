"""`loopline serve`: the app on uvicorn (httptools, uvloop), one or several worker processes.

Each worker loads the served version itself, then polls the registry alias every
`serve.refresh`; a moved alias is loaded beside the running version and swapped in whole, so
no request waits for a load or fails across the switch. Accepted connections get TCP_NODELAY:
uvicorn leaves Nagle's algorithm on under `--workers`, and a kept-alive connection then waits
~40 ms for the client's delayed ACK on every response (uvicorn #3149, KServe #6050).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loopline.integrations import prediction_log as plog
from loopline.pipeline.load import load_pipeline
from loopline.runtime.environment import applied, step_environment
from loopline.runtime.monitoring import model_name
from loopline.runtime.tracking import resolve_uris
from loopline.serving.app import Service, build_app
from loopline.serving.metrics import MULTIPROC_ENV, WORKERS_DIR_ENV
from loopline.serving.monitor_loop import MonitorLoop
from loopline.serving.router import CANARY, CHAMPION, Split
from loopline.serving.served_model import Source
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location
from loopline.spec.serving import ServeSpec

SETTINGS_ENV = "LOOPLINE_SERVE_SETTINGS"  # how `--workers` processes learn what to serve
RETRY_FAILED_S = 60.0  # a version that failed to load is tried again this much later


class NoDelayHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with Nagle's algorithm off on every connection."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


@dataclass(frozen=True)
class Settings:
    """What one server serves; JSON so worker processes get the same."""

    spec: str
    overrides: list[str] = field(default_factory=list)
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    model: str | None = None
    log: bool | None = None

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(**json.loads(os.environ[SETTINGS_ENV]))


def serve_spec(loaded: LoadedSpec, settings: Settings) -> ServeSpec:
    """The spec's `serve:` block (every default when absent) with the command line applied."""
    serve = loaded.spec.serve or ServeSpec()
    changes: dict[str, Any] = {k: v for k, v in (("host", settings.host),
                               ("port", settings.port), ("workers", settings.workers),
                               ("model", settings.model)) if v is not None}
    if settings.log is not None:
        changes["log"] = serve.log.model_copy(update={"enabled": settings.log})
    return serve.model_copy(update=changes)


def rollout_state_uri(loaded: LoadedSpec) -> str | None:
    """The controller's state file the server routes by; None for a spec without rollout."""
    from loopline.runtime.rollout_state import state_uri

    return state_uri(loaded) if loaded.spec.rollout is not None else None


def log_folder(loaded: LoadedSpec) -> str:
    root = location(loaded.spec.artifacts.root, loaded.project_root)
    return plog.log_folder(root, model_name(loaded))


def build_service(loaded: LoadedSpec, serve: ServeSpec) -> tuple[Service, Source]:
    name = model_name(loaded)
    tracking, registry = resolve_uris(loaded.spec, loaded.project_root)
    source = Source(tracking, registry, name, loaded.project_root, serve.feature_store,
                    serve.feature_cache_s)
    log = plog.PredictionLog(log_folder(loaded), serve.log.flush_rows,
                             serve.log.flush_every_s) if serve.log.enabled else None
    service = Service(name, serve, log)
    if loaded.spec.rollout is not None:
        service.sticky_by = loaded.spec.rollout.sticky_by
    return service, source


class Refresher:
    """Loads the alias's version at start, then swaps in each new one as the alias moves."""

    def __init__(self, service: Service, source: Source, ref: str, every_s: float,
                 rollout_state: str | None = None) -> None:
        self.service, self.source, self.ref, self.every_s = service, source, ref, every_s
        self.rollout_state = rollout_state  # the controller's rollout.json, when a rollout
        self._stop = threading.Event()
        self._failed: dict[str, float] = {}  # version -> when it last failed to load
        self.thread = threading.Thread(target=self._loop, name="refresher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> str | None:
        """Swap in the alias's version if it moved; the version now served."""
        wanted = self.source.version_of(self.ref)
        current = self.service.router.served().get(CHAMPION)
        if not wanted or (current is not None and current.number == wanted):
            if not wanted and current is None:
                self.service.load_error = f"{self.source.name} has no {self.ref!r} version yet"
            return current.number if current else None
        served = self._loaded(wanted)
        if served is None:
            return current.number if current else None  # tried lately; keep serving
        previous = self.service.router.swap(CHAMPION, served)
        metrics, name = self.service.metrics, self.source.name
        if previous is not None:
            metrics.info.labels(name, previous.number, CHAMPION).set(0)
            metrics.swaps.labels(name).inc()
            print(f"serving {name} v{served.number} (was v{previous.number}): "
                  f"{self.ref} moved", flush=True)
        else:
            print(f"serving {name} v{served.number} ({self.ref})", flush=True)
        metrics.info.labels(name, served.number, CHAMPION).set(1)
        self.service.load_error = None
        return served.number

    def _loaded(self, version: str) -> Any:
        """`version` ready to serve: the canary's copy when it is that version (a promoted
        challenger is not loaded twice), else loaded and warmed; None if it failed lately."""
        canary = self.service.router.served().get(CANARY)
        if canary is not None and canary.number == version:
            return canary
        failed_at = self._failed.get(version)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_S:
            return None
        try:
            served = self.source.load(version)
            _warm_up(served)
        except Exception:
            self._failed[version] = time.monotonic()
            raise
        self._failed.pop(version, None)
        return served

    def follow_rollout(self) -> None:
        """Route the challenger's share the controller wrote; the champion alone otherwise."""
        from loopline.runtime import rollout_state

        if self.rollout_state is None:
            return
        state = rollout_state.read(self.rollout_state)
        wanted = rollout_state.traffic_of(state)
        router, name = self.service.router, self.source.name
        champion, canary = router.served().get(CHAMPION), router.served().get(CANARY)
        if state.get("status") == rollout_state.PROMOTED and canary is not None and \
                canary.number == str(state.get("challenger")) and not self.ref.isdigit() and \
                (champion is None or champion.number != canary.number):
            # Promoted: the challenger already loaded here answers everything at once (the
            # alias poll would otherwise send traffic back to the old champion meanwhile).
            router.swap(CHAMPION, canary)
            self.service.metrics.info.labels(name, canary.number, CHAMPION).set(1)
            champion = canary
        # A server pinned to one version (`--model 3`: a KServe revision) answers only from
        # it; KServe splits the traffic between revisions. It still mirrors a shadow.
        pinned = self.ref.isdigit() and wanted.mode != "shadow"
        if pinned or wanted.canary is None or wanted.weight <= 0 or \
                (champion is not None and champion.number == wanted.canary):
            if (dropped := router.clear_split()) is not None:
                self.service.metrics.info.labels(name, dropped.number, CANARY).set(0)
                print(f"rollout over: {name} v{champion.number if champion else '-'} "
                      "answers every request", flush=True)
            return
        current = router.served().get(CANARY)
        served = current if current is not None and current.number == wanted.canary else \
            self._loaded(wanted.canary)
        split = Split(float(wanted.weight), wanted.mode, wanted.rollout)
        if served is None or (served is current and router.split == split):
            return
        router.set_split(served, split)
        self.service.metrics.info.labels(name, served.number, CANARY).set(1)
        verb = "mirrors" if wanted.mode == "shadow" else "answers"
        print(f"rollout {wanted.rollout}: v{served.number} {verb} {wanted.weight}% of "
              f"requests ({wanted.mode})", flush=True)

    def _loop(self) -> None:
        while True:
            try:  # the rollout first: a rollback must not wait for a registry that is down
                self.follow_rollout()
            except Exception as exc:  # noqa: BLE001 - keep routing as now; try again
                print(f"could not follow {self.source.name}'s rollout: {type(exc).__name__}: "
                      f"{str(exc)[:300]}", file=sys.stderr, flush=True)
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded; try again
                self.service.load_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(f"could not load {self.source.name}@{self.ref}: "
                      f"{self.service.load_error}", file=sys.stderr, flush=True)
            if self._stop.wait(self.every_s):
                return


def _warm_up(served: Any) -> None:
    """Pay the first calls' lazy initialisation before the version takes traffic: the first
    online read opens Feast's store (~240 ms on the example), the first model call builds its
    caches. Measured: without the lookup here, the first request after start waited 570 ms
    and a 1,000-request replay at concurrency 8 had p99 ~300 ms against p95 ~20 ms."""
    frame = _warm_rows(served)
    if served.features is not None:
        row = frame.iloc[0]
        served.features.lookup([{key: row.get(key, "x") for key in served.features.keys}])
    served.predict(frame)


def _warm_rows(served: Any) -> Any:
    """A one-row frame of plausible values for the warm-up call (never logged)."""
    import pandas as pd

    from loopline.serving.schema import fitted_transform

    transform = fitted_transform(served.model)  # a sklearn Pipeline's or a torch bundle's
    fills = {column: stats[0] for column, stats in
             getattr(transform, "numeric_stats_", {}).items()}  # the training medians
    row: dict[str, Any] = {}
    for name, kind in served.schema.fields.items():
        row[name] = {"number": fills.get(name, 0.0),
                     "timestamp": pd.Timestamp("2020-01-01", tz="UTC")}.get(kind, "x")
    for name in served.schema.features:
        row[name] = None
    return pd.DataFrame([row])


def create_app(settings: Settings, preload: bool = False, watch: bool = False) -> Any:
    """The app one worker serves. One process loads the model in the background (/health
    answers at once, /ready once the version is loaded); with `preload` (each of several
    workers sharing one socket) a worker accepts connections only once its model is loaded,
    so no request reaches a worker that would answer 503. With `watch` it also runs the live
    checks and exports their figures (`loopline_live_metric`)."""
    loaded = load_pipeline(settings.spec, settings.overrides)
    serve = serve_spec(loaded, settings)
    service, source = build_service(loaded, serve)
    refresher = Refresher(service, source, serve.model, serve.refresh_s,
                          rollout_state_uri(loaded))
    service.metrics.workers.labels(service.model_name).set(1)
    monitor = live_checks(loaded, serve, service) if watch else None

    async def start() -> None:
        if preload:
            import asyncio
            import contextlib

            with contextlib.suppress(Exception):  # the loop below retries and says why
                await asyncio.to_thread(refresher.check)
                await asyncio.to_thread(refresher.follow_rollout)
        refresher.start()
        if monitor is not None:
            monitor.start()

    def shutdown() -> None:
        refresher.stop()
        if monitor is not None:
            monitor.stop()
        service.batcher.close()
        service.shadow_batcher.close()
        if service.log is not None:
            service.log.close()  # what is buffered becomes a file before the process ends

    return build_app(service, on_startup=[start], on_shutdown=[shutdown])


def live_checks(loaded: LoadedSpec, serve: ServeSpec,
                service: Service | None = None) -> MonitorLoop | None:
    """The live checks loop, for a spec with a `serve:` block and the log on."""
    if loaded.spec.serve is None or not serve.log.enabled:
        return None

    def export(result: dict[str, Any]) -> None:
        if service is None:
            return
        metric = (result.get("checks") or {}).get("metric") or {}
        if metric.get("value") is not None and result.get("version"):
            service.metrics.live_metric.labels(service.model_name, str(result["version"]),
                                               str(metric.get("metric", "metric"))).set(
                float(metric["value"]))
        for feature, score in latest_drift_scores(loaded).items():
            service.metrics.drift_psi.labels(service.model_name, feature).set(score)

    return MonitorLoop(loaded, serve.monitoring.every_s, export)


def app_from_env() -> Any:
    """uvicorn's factory in each `--workers` process."""
    return create_app(Settings.from_env(), preload=True)


def run(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM: uvicorn drains, the log is flushed)."""
    loaded = load_pipeline(settings.spec, settings.overrides)
    serve = serve_spec(loaded, settings)
    model_name(loaded)
    with applied(step_environment(loaded)):
        options: dict[str, Any] = {"host": serve.host, "port": serve.port, "http": NoDelayHttpTools,
                                   "loop": "uvloop", "log_level": "warning",
                                   "timeout_graceful_shutdown": 10}
        print(f"loopline serve: {loaded.spec.registry.model_name}@{serve.model} on "  # type: ignore[union-attr]
              f"http://{serve.host}:{serve.port} ({serve.workers} worker"
              f"{'s' if serve.workers > 1 else ''}); log: "
              f"{log_folder(loaded) if serve.log.enabled else 'off'}", flush=True)
        # One process runs the live checks: the server itself, or the workers' parent.
        monitor = live_checks(loaded, serve) if serve.workers > 1 else None
        if monitor is not None:
            monitor.start()
        try:
            _run_uvicorn(settings, serve, options)
        finally:
            if monitor is not None:
                monitor.stop()


def latest_drift_scores(loaded: LoadedSpec) -> dict[str, float]:
    """Per column, the score of the last drift run of the drift spec that retrains this one
    (`loopline_drift_psi`); {} before any drift run."""
    from loopline.runtime.retrain import drift_specs_retraining, drift_summary

    for drift_spec in drift_specs_retraining(loaded):
        try:
            summary = drift_summary(drift_spec)
        except (FileNotFoundError, OSError, ValueError, KeyError):
            continue
        return {column: float(figures["score"])
                for column, figures in (summary.get("columns") or {}).items()
                if isinstance(figures, dict) and figures.get("score") is not None}
    return {}


def _run_uvicorn(settings: Settings, serve: ServeSpec, options: dict[str, Any]) -> None:
    import uvicorn

    if serve.workers == 1:
        os.environ.pop(MULTIPROC_ENV, None)  # one process: metrics in memory
        uvicorn.run(create_app(settings, watch=True), **options)
        return
    with tempfile.TemporaryDirectory(prefix="loopline-metrics-") as metrics_dir:
        os.environ[MULTIPROC_ENV] = os.environ[WORKERS_DIR_ENV] = metrics_dir
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run("loopline.serving.server:app_from_env", factory=True,
                    workers=serve.workers, **options)
