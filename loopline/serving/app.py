"""The HTTP API: a plain Starlette app (no request models: the schema comes from the model).

POST /predict {"inputs": {...}}, POST /predict/batch {"rows": [...]}, GET /health, /ready,
/metrics, /schema. A bad request gets 4xx naming every bad field; the server stays up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopline.integrations import prediction_log as plog
from loopline.serving.batcher import Batcher
from loopline.serving.metrics import Metrics
from loopline.serving.predictor import Job, run_jobs
from loopline.serving.router import Router
from loopline.serving.schema import FieldError
from loopline.serving.served_model import ServedModel
from loopline.spec.serving import ServeSpec

MAX_BODY = 16 * 1024 * 1024
MAX_SHADOWS_IN_FLIGHT = 64  # mirrored requests waiting or running; more are not mirrored
SHADOW_WAIT_MS = 25.0


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    media_type="application/json")


def _problems(errors: list[FieldError], status: int = 422) -> Response:
    return _json({"errors": [e.to_json() for e in errors]}, status)


class Service:
    """Everything a request touches: the router, the batcher, the metrics and the log."""

    def __init__(self, model_name: str, serve: ServeSpec, log: plog.PredictionLog | None,
                 metrics: Metrics | None = None) -> None:
        self.model_name = model_name
        self.serve = serve
        self.router = Router()
        self.metrics = metrics or Metrics()
        self.log = log
        self.batcher = Batcher(lambda jobs: run_jobs(jobs, serve.missing_features),
                               serve.batching.max_batch, serve.batching.max_wait_ms,
                               serve.batching.enabled, serve.model_threads)
        # Shadows wait up to SHADOW_WAIT_MS for company: one model call for many mirrored
        # requests leaves the cores to the answers (32 rows cost little more than one).
        self.shadow_batcher = Batcher(lambda jobs: run_jobs(jobs, serve.missing_features),
                                      max(serve.batching.max_batch, MAX_SHADOWS_IN_FLIGHT),
                                      max(serve.batching.max_wait_ms, SHADOW_WAIT_MS), True,
                                      serve.model_threads)
        self._shadow_tasks: set[asyncio.Task[None]] = set()  # held until done (GC)
        self.shadows_dropped = 0
        self.load_error: str | None = None
        self.sticky_by: str | list[str] = "request"  # the spec's rollout.sticky_by

    # -- endpoints -----------------------------------------------------------------------
    async def predict(self, request: Request) -> Response:
        return await self._predict(request, batch=False)

    async def predict_batch(self, request: Request) -> Response:
        return await self._predict(request, batch=True)

    async def health(self, _request: Request) -> Response:
        return _json({"status": "ok"})

    async def ready(self, _request: Request) -> Response:
        if not self.router.ready:
            return _json({"ready": False, "model": self.model_name,
                          "error": self.load_error or "loading"}, 503)
        answer = {"ready": True, "model": self.model_name,
                  "versions": {r: m.number for r, m in self.router.served().items()}}
        if self.load_error:  # serving the loaded version; the new one failed to load
            answer["error"] = self.load_error
        return _json(answer)

    async def schema(self, _request: Request) -> Response:
        if not self.router.ready:
            return _json({"error": self.load_error or "loading"}, 503)
        _, served = self.router.pick("")
        return _json({"model": served.name, "version": served.number,
                      "task": served.task, **served.schema.to_json()})

    async def metrics_text(self, _request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    # -- prediction ----------------------------------------------------------------------
    async def _predict(self, request: Request, batch: bool) -> Response:
        started = time.perf_counter()
        endpoint = "batch" if batch else "predict"
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response, job = await self._answer(request, batch, request_id)
        elapsed = time.perf_counter() - started
        self._observe(endpoint, response.status_code, elapsed, job, request_id)
        response.headers["x-request-id"] = request_id
        return response

    async def _answer(self, request: Request, batch: bool,
                      request_id: str) -> tuple[Response, Job | None]:
        if not self.router.ready:
            return _json({"error": "model not loaded yet: " + (self.load_error or "loading")},
                         503), None
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return _problems([FieldError("body", f"larger than {MAX_BODY} bytes")], 413), None
        body = await request.body()
        if len(body) > MAX_BODY:
            return _problems([FieldError("body", f"larger than {MAX_BODY} bytes")], 413), None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problems([FieldError("body", f"not JSON: {exc}")], 400), None
        key = request.headers.get("x-routing-key") or \
            _key(payload, self._sticky_fields()) or request_id
        route, served = self.router.pick(key)
        rows, errors = self._rows(payload, batch, served)  # checked by the version that answers
        if errors:
            return _problems(errors), None
        ids = [f"{request_id}-{i}" for i in range(len(rows))] if batch else [request_id]
        job = Job(rows, served, route, ids=ids)
        await self.batcher.submit(job)
        if shadows := self.router.shadows(key):
            self._mirror(shadows, rows, ids, endpoint="batch" if batch else "predict")
        if job.error:
            return _json({"error": f"prediction failed: {job.error}",
                          "request_id": request_id}, 500), job
        if job.refused:
            where = "inputs" if not batch else "rows[{}]"
            return _problems([FieldError(f"{where.format(i)}.{name}", "no value in the online "
                                         "store (missing_features.policy: refuse)")
                              for i, names in enumerate(job.missing) for name in names]), job
        out: dict[str, Any] = {"request_id": request_id, "model": served.name,
                               "version": served.number}
        if batch:
            out.update(predictions=job.scores, missing_features=job.missing,
                       request_ids=job.ids)
        else:
            out.update(prediction=job.scores[0], missing_features=job.missing[0])
        return _json(out), job

    def _sticky_fields(self) -> tuple[str, ...]:
        """The input fields that key a request's route (`rollout.sticky_by`); none: the
        `x-routing-key` header or the request id."""
        if self.sticky_by == "entity":
            return served_keys(self.router)
        return () if self.sticky_by == "request" else tuple(self.sticky_by)

    def _mirror(self, shadows: list[tuple[str, ServedModel]], rows: list[dict[str, Any]],
                ids: list[str], endpoint: str) -> None:
        """Send the request's rows to each shadow version once the answer is on its way: on
        a batcher of its own, so a shadow call never queues before a champion call; logged
        with route `shadow`, never returned."""
        for route, model in shadows:
            if len(self._shadow_tasks) >= MAX_SHADOWS_IN_FLIGHT:
                self.shadows_dropped += 1  # a shadow never builds a queue the answers share
                continue
            job = Job(rows, model, route, ids=list(ids))
            task = asyncio.get_running_loop().create_task(self._shadow(job, endpoint))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(self, job: Job, endpoint: str) -> None:
        await asyncio.sleep(0)  # after the answer's own continuation has run
        await self.shadow_batcher.submit(job)
        status = 500 if job.error else 200
        # Its latency is its batch's lookup and model call: the wait for a batch is the
        # shadow's own choice, not a caller's wait (the gates compare it with the champion).
        self._observe(endpoint, status, job.work_s, job, job.ids[0])

    def _rows(self, payload: Any, batch: bool,
              served: ServedModel) -> tuple[list[dict[str, Any]], list[FieldError]]:
        field = "rows" if batch else "inputs"
        if not isinstance(payload, dict) or field not in payload:
            example = '{"rows": [{...}, ...]}' if batch else '{"inputs": {...}}'
            return [], [FieldError(field, f"required: send {example}")]
        if extra := sorted(set(payload) - {field}):
            return [], [FieldError(name, "unknown field") for name in extra]
        given = payload[field] if batch else [payload[field]]
        if batch and (not isinstance(given, list) or not given):
            return [], [FieldError("rows", "expected a non-empty list of objects")]
        if len(given) > self.serve.max_batch_rows:
            return [], [FieldError("rows", f"{len(given)} rows; at most "
                                           f"{self.serve.max_batch_rows} per request")]
        rows, errors = [], []
        for i, row in enumerate(given):
            clean, problems = served.schema.check(row, f"rows[{i}]" if batch else "inputs")
            rows.append(clean)
            errors += problems
        return rows, errors

    def _observe(self, endpoint: str, status: int, elapsed: float, job: Job | None,
                 request_id: str) -> None:
        m, name = self.metrics, self.model_name
        version = job.model.number if job else ""
        route = job.route if job else ""
        m.requests.labels(name, version, route, endpoint, str(status)).inc()
        m.latency.labels(name, version, route, endpoint).observe(elapsed)
        if job is None:
            return  # no valid rows: nothing predicted, nothing to log
        if job.scores:
            m.predictions.labels(name, version, route).inc(len(job.scores))
            histogram = m.prediction.labels(name, version)
            for score in job.scores:
                histogram.observe(score)
        if job.cache_hits or job.cache_misses:
            m.cache.labels(name, "hit").inc(job.cache_hits)
            m.cache.labels(name, "miss").inc(job.cache_misses)
        for names in job.missing:
            for feature in names:
                m.missing.labels(name, feature).inc()
        if self.log is not None:
            self.log.append(_log_rows(job, status, elapsed))


def served_keys(router: Router) -> tuple[str, ...]:
    """The entity keys of the champion's feature service (`rollout.sticky_by: entity`)."""
    served = router.served().get("champion")
    return served.schema.keys if served else ()


def _key(payload: Any, keys: tuple[str, ...]) -> str:
    """The routing key: the first row's values of `keys` ("" without keys)."""
    row = payload.get("inputs") if isinstance(payload, dict) else None
    if row is None and isinstance(payload, dict) and isinstance(payload.get("rows"), list) \
            and payload["rows"]:
        row = payload["rows"][0]
    return "|".join(str(row.get(k, "")) for k in keys) if isinstance(row, dict) else ""


def _log_rows(job: Job, status: int, elapsed: float) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    latency_ms = elapsed * 1000
    out = []
    for i, row in enumerate(job.rows):
        score = job.scores[i] if i < len(job.scores) else None
        values = {**row, **(job.features[i] if i < len(job.features) else {})}
        missing = job.missing[i] if i < len(job.missing) else []
        out.append(plog.row(job.ids[i], now,
                            job.model.number, job.route, status, latency_ms, score, missing,
                            job.error, values))
    return out


def build_app(service: Service, on_startup: list[Any] | None = None,
              on_shutdown: list[Any] | None = None) -> Starlette:
    routes = [
        Route("/predict", service.predict, methods=["POST"]),
        Route("/predict/batch", service.predict_batch, methods=["POST"]),
        Route("/health", service.health, methods=["GET"]),
        Route("/ready", service.ready, methods=["GET"]),
        Route("/schema", service.schema, methods=["GET"]),
        Route("/metrics", service.metrics_text, methods=["GET"]),
    ]
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> Any:
        for hook in on_startup or []:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        try:
            yield
        finally:
            for hook in on_shutdown or []:
                hook()

    return Starlette(routes=routes, lifespan=lifespan)
