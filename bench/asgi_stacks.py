"""Which ASGI stack serves a model fastest here: the same tiny prediction app on each.

The app: a scikit-learn RandomForest (100 trees, 20 features) predicting one row per request,
JSON in and out with orjson, the model called inline in the event loop (what Loopline's
server does for a CPU-bound model). Served by Starlette on uvicorn (httptools) with 1 and 2
workers, FastAPI with a pydantic body on uvicorn, and Starlette on granian with 1 and 2
workers; real processes on 127.0.0.1, kept-alive connections (bench/_load.py), concurrency 1,
8 and 32; all servers up at once and loaded in interleaved rounds, medians over the rounds.

The Nagle check: uvicorn `--workers 2` on the asyncio loop as it ships (its accepted
connections keep Nagle's algorithm on), and the same with a protocol class that sets
TCP_NODELAY on each accepted connection (`NoDelayHttpToolsProtocol`, passed as `http=`).

    .venv/bin/python bench/asgi_stacks.py [--out /tmp/bench_asgi.txt]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _load  # noqa: E402

FEATURES = [f"f{i}" for i in range(20)]
MODEL_ENV = "LOOPLINE_BENCH_MODEL"


# --- the app (imported by the server processes) ------------------------------------------

def _predictor() -> Any:
    """predict(row dict) -> float, from the model file named by the environment."""
    import joblib
    import numpy as np

    model = joblib.load(os.environ[MODEL_ENV])

    def predict(inputs: dict[str, float]) -> float:
        row = np.array([[float(inputs[name]) for name in FEATURES]])
        return float(model.predict_proba(row)[0, 1])

    return predict


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    predict = _predictor()

    async def score(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return Response(orjson.dumps({"prediction": predict(body["inputs"])}),
                        media_type="application/json")

    async def ready(_: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(routes=[Route("/predict", score, methods=["POST"]),
                             Route("/ready", ready)])


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response
    from pydantic import create_model

    predict = _predictor()
    Inputs = create_model("Inputs", **{name: (float, ...) for name in FEATURES})
    Body = create_model("Body", inputs=(Inputs, ...))
    app = FastAPI()

    async def score(body: Any) -> Response:
        inputs = body.inputs.model_dump()
        return Response(orjson.dumps({"prediction": predict(inputs)}),
                        media_type="application/json")

    # The model class is local: give FastAPI the class itself, not a string to resolve.
    score.__annotations__ = {"body": Body, "return": Response}
    app.post("/predict")(score)

    @app.get("/ready")
    async def ready() -> dict:
        return {}

    return app


def _nodelay_protocol() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class NoDelay(HttpToolsProtocol):
        """uvicorn's httptools protocol, with Nagle's algorithm off on every connection."""

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    return NoDelay


def __getattr__(name: str) -> Any:  # uvicorn imports the class by name, lazily
    if name == "NoDelayHttpToolsProtocol":
        return _nodelay_protocol()
    raise AttributeError(name)


# --- the measurement ------------------------------------------------------------------------

def train_model(folder: Path) -> Path:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=20_000, n_features=20, n_informative=10,
                               random_state=0)
    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=0)
    model.fit(x, y)
    path = folder / "forest.joblib"
    joblib.dump(model, path)
    return path


def bodies(count: int = 200) -> list[bytes]:
    import numpy as np

    rng = np.random.default_rng(1)
    return [orjson.dumps({"inputs": dict(zip(FEATURES, row.tolist(), strict=True))})
            for row in rng.normal(size=(count, len(FEATURES)))]


def command(stack: str, port: int, workers: int) -> list[str]:
    python = sys.executable
    if stack.startswith("granian"):
        return [python, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--factory", "--working-dir", str(BENCH), "--no-access-log",
                "--log-level", "warning", "asgi_stacks:starlette_app"]
    app = "asgi_stacks:fastapi_app" if stack.startswith("fastapi") else \
        "asgi_stacks:starlette_app"
    http = "asgi_stacks:NoDelayHttpToolsProtocol" if "nodelay" in stack else "httptools"
    loop = "asyncio" if "asyncio" in stack else "uvloop"
    return [python, "-m", "uvicorn", "--factory", app, "--app-dir", str(BENCH),
            "--http", http, "--loop", loop, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning"]


# (label, stack, workers)
# With uvloop, accepted connections get TCP_NODELAY in every worker; with the asyncio loop
# and --workers > 1 they do not (the listening socket comes from the parent and asyncio's
# _set_nodelay skips it): that is where the Nagle trap bites.
SERVERS = [
    ("starlette + uvicorn/uvloop, 1 worker", "uvicorn", 1),
    ("starlette + uvicorn/uvloop, 2 workers", "uvicorn", 2),
    ("starlette + uvicorn/asyncio, 2 workers", "uvicorn-asyncio", 2),
    ("  same, TCP_NODELAY set on accept", "uvicorn-asyncio-nodelay", 2),
    ("fastapi (pydantic body) + uvicorn/uvloop, 1 w.", "fastapi", 1),
    ("starlette + granian, 1 worker", "granian", 1),
    ("starlette + granian, 2 workers", "granian", 2),
]
COUNTS = {1: 200, 8: 600, 32: 1000}


def model_floor(model: Path, requests: list[bytes], calls: int = 200) -> float:
    """Median ms of the model call alone (parse + predict_proba + dumps), in this process:
    the floor under every server's latency."""
    import time

    os.environ[MODEL_ENV] = str(model)
    predict = _predictor()
    times = []
    for index in range(calls):
        started = time.perf_counter()
        orjson.dumps({"prediction": predict(orjson.loads(requests[index % len(requests)])
                                            ["inputs"])})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class Server:
    """One stack as a real process on a free loopback port, its output in a log file."""

    def __init__(self, label: str, stack: str, workers: int, model: Path,
                 requests: list[bytes]) -> None:
        self.label, self.stack, self.workers = label, stack, workers
        self.port = _load.free_port()
        self.log = model.parent / f"{stack}-{workers}.log"
        self.process = _load.start(command(stack, self.port, workers), log=self.log,
                                   env={**os.environ, MODEL_ENV: str(model)}, cwd=BENCH)
        self.wire = [_load.post("127.0.0.1", self.port, "/predict", body) for body in requests]

    def ready(self) -> None:
        try:
            _load.wait_ready("127.0.0.1", self.port, "/ready", self.process)
        except Exception:
            print(self.log.read_text()[-3000:])
            raise
        # Warm-up: every worker has seen requests (the kernel spreads connections).
        _load.run("127.0.0.1", self.port, self.wire, count=100, concurrency=8, time_limit_s=10)

    def load(self, concurrency: int, time_limit_s: float) -> _load.Result:
        result = _load.run("127.0.0.1", self.port, self.wire, count=COUNTS[concurrency],
                           concurrency=concurrency, time_limit_s=time_limit_s)
        assert result.ok == 0 or b"prediction" in result.sample, result.sample
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also append each line to this file")
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS",
                                                                          "3")))
    parser.add_argument("--time-limit", type=float, default=15.0,
                        help="seconds per run at most")
    args = parser.parse_args()
    _load.exit_on_sigterm()

    def say(line: str = "") -> None:
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as handle:
                handle.write(line + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        model = train_model(Path(tmp))
        requests = bodies()
        say(f"## ASGI stacks: RandomForest 100 trees x 20 features, one row per request, "
            f"{os.cpu_count()} cores (servers and load generator share them)")
        say(f"model call alone (orjson in, predict_proba, orjson out), in-process: median "
            f"{model_floor(model, requests):.2f} ms")
        servers: list[Server] = []
        try:
            for label, stack, workers in SERVERS:  # all up at once; idle ones cost nothing
                servers.append(Server(label, stack, workers, model, requests))
            for server in servers:
                server.ready()
            load_before = os.getloadavg()[0]
            # Rounds: each round loads every server in turn, so a burst of other work on the
            # machine hits all of them alike; each cell is the median over the rounds.
            runs: dict[tuple[str, int], list[_load.Result]] = {}
            for round_ in range(args.repeats):
                for server in servers:
                    for concurrency in COUNTS:
                        result = server.load(concurrency, args.time_limit)
                        runs.setdefault((server.label, concurrency), []).append(result)
                        if result.failed:
                            say(f"  round {round_ + 1}, {server.label}: {result.line()}")
            load_after = os.getloadavg()[0]
        finally:
            for server in servers:
                _load.stop(server.process)
        say(f"kept-alive connections; medians of {args.repeats} interleaved rounds of "
            f"{COUNTS} requests (concurrency: count), at most {args.time_limit:g} s each; "
            f"load average {load_before:.2f} before, {load_after:.2f} after")
        say(f"{'server':46} {'conc':>4} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
            f"{'req/s':>7}")
        table = {key: _load.medians(value) for key, value in runs.items()}
        for (label, concurrency), f in table.items():
            failed = f"  failed {f['failed']} of {f['n']}" if f["failed"] else ""
            say(f"{label:46} {concurrency:4d} {f['p50']:7.2f} {f['p95']:7.2f} "
                f"{f['p99']:7.2f} {f['rps']:7.1f}{failed}")
        shipped = table["starlette + uvicorn/asyncio, 2 workers", 1]
        nodelay = table["  same, TCP_NODELAY set on accept", 1]
        say(f"Nagle check, uvicorn/asyncio 2 workers, concurrency 1: p50 "
            f"{shipped['p50']:.2f} / p95 {shipped['p95']:.2f} ms as shipped, "
            f"p50 {nodelay['p50']:.2f} / p95 {nodelay['p95']:.2f} ms with TCP_NODELAY")
        cpu = max(f["gen_us"] for f in table.values())
        say(f"load generator CPU: at most {cpu:.0f} us per request (its ceiling: "
            "`python bench/_load.py`)")


if __name__ == "__main__":
    main()
