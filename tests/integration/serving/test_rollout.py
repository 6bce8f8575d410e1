"""Progressive rollout end to end: a real `loopline serve` process on 127.0.0.1 routing real
HTTP traffic, a real SQLite registry, challengers with known faults registered for real, the
controller looking at the real prediction log, a real webhook receiver for the alerts.

One server serves every scenario (its `refresh` is short); each scenario starts a rollout
against champion v1, drives traffic and the controller until the rollout ends, and checks
what the registry, the history, the alerts and the answers say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopline.integrations import mlflow_registry as reg
from loopline.integrations import prediction_labels, prediction_log
from loopline.pipeline.load import load_pipeline
from loopline.runtime import rollout
from loopline.runtime import rollout_state as rs
from tests.support import LOOPLINE, registry_client, run_cli
from tests.support.live_monitoring import MODEL, trained_project
from tests.support.rollout import (
    ROLLOUT,
    Traffic,
    flights,
    labels_for,
    register_variant,
)
from tests.support.serving import served, set_serve

pytestmark = pytest.mark.slow
SPEC = "pipelines/train.yaml"


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def kinds(self) -> list[str]:
        return [str(b.get("kind") or b.get("event", {}).get("kind") or b.get("title", ""))
                for b in self.bodies]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = trained_project(tmp_path_factory.mktemp("rollout") / "project")
    spec = root / SPEC
    spec.write_text(spec.read_text() + ROLLOUT.format())
    set_serve(root, SPEC, refresh="0.3s", log__flush_every="0.2s", log__flush_rows=50)
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Any]:
    with served(project, SPEC) as running:
        yield running


@pytest.fixture(scope="module")
def variants(project: Path, server: Any) -> dict[str, str]:
    """The faulty challengers; `slow` sleeps twice the champion's p95 answer time as the
    server answers it now, so its slow answers take about three times as long."""
    warm = Traffic(_port(server), flights(project), prefix="warm-", limit=300)
    warm.run()
    p95_s = float(np.percentile([a.elapsed_s for a in warm.answers[50:]], 95))
    return {"errors": register_variant(project, error_every=10),
            "slow": register_variant(project, delay_s=2 * p95_s),
            "worse": register_variant(project, invert=True),
            "blurred": register_variant(project, blur=0.8),
            "copy": register_variant(project)}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    hook = Receiver()
    monkeypatch.setenv("LOOPLINE_TEST_HOOK", hook.url)
    yield hook
    hook.server.shutdown()


def _port(server: Any) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _crown(project: Path, version: str) -> None:
    client = registry_client(project)
    reg.crown(client, MODEL, version, reason="test set-up")


def _drive(project: Path, server: Any, version: str, spec: str = SPEC, timeout_s: float = 90,
           labels: bool = False, every_s: float = 0.3) -> tuple[dict[str, Any], Traffic]:
    """Start a rollout of `version`, send traffic, look every `every_s` until it ends."""
    loaded = load_pipeline(project / spec)
    rows = flights(project)
    traffic = Traffic(_port(server), rows, prefix=f"v{version}-")
    thread = traffic.start()
    root = str(project / "artifacts")
    try:
        state = rollout.start(loaded, version, reason="test")
        deadline = time.monotonic() + timeout_s
        written = 0
        while state["status"] in rs.ACTIVE and time.monotonic() < deadline:
            time.sleep(every_s)
            if labels and len(traffic.ids) - written >= 200:
                written = len(traffic.ids)
                prediction_labels.write(prediction_labels.labels_folder(root, MODEL),
                                        labels_for(traffic))
            state = rollout.evaluate(loaded)
    finally:
        traffic.stop.set()
        thread.join(timeout=30)
    return state, traffic


def _aliases(project: Path) -> dict[str, str]:
    return {alias: str(v) for alias, v in
            (registry_client(project).get_registered_model(MODEL).aliases or {}).items()}


def _rollout_events(project: Path, rollout_id: str) -> list[dict[str, Any]]:
    return [e for e in reg.history(registry_client(project), MODEL)
            if e.get("kind") == "rollout" and e.get("rollout") == rollout_id]


def test_a_challenger_failing_10_percent_is_rolled_back_at_the_first_step_with_one_alert(
        project: Path, server: Any, variants: dict[str, str], receiver: Receiver) -> None:
    _crown(project, "1")
    state, traffic = _drive(project, server, variants["errors"])
    assert state["status"] == "rolled_back", state
    assert state["step"] == 0 and state["weight"] == 0
    assert "errors" in state["reason"]
    assert _aliases(project)["champion"] == "1" and "canary" not in _aliases(project)
    events = _rollout_events(project, state["id"])
    assert [e["action"] for e in events] == ["started", "rolled_back"]
    assert events[-1]["figures"]["error_rate"] > 0.05
    assert sum("rollout.rolled_back" in json.dumps(b) for b in receiver.bodies) == 1
    # Traffic is back on the champion: the failing version answers nothing a refresh later.
    failures = [a for a in traffic.answers if a.status == 500]
    assert failures and all(a.version == variants["errors"] or not a.version for a in failures)
    time.sleep(1.0)  # past the server's refresh (0.3 s)
    after = Traffic(_port(server), flights(project), prefix="after-", limit=200)
    after.run()
    assert {a.version for a in after.answers} == {"1"}
    assert {a.status for a in after.answers} == {200}
    record = Path(rs.record_uri(load_pipeline(project / SPEC), state["id"]))
    assert json.loads(record.read_text())["status"] == "rolled_back"
    assert record.with_suffix(".png").stat().st_size > 10_000  # the picture beside it


def test_a_challenger_three_times_slower_is_rolled_back_on_latency(
        project: Path, server: Any, variants: dict[str, str], receiver: Receiver) -> None:
    _crown(project, "1")
    state, _ = _drive(project, server, variants["slow"])
    assert state["status"] == "rolled_back", state
    breached = [g["gate"] for g in state["decisions"][-1]["gates"] if g["breached"]]
    assert breached and set(breached) <= {"p95_ratio", "p99_ratio"}, state["decisions"][-1]
    assert _aliases(project)["champion"] == "1"


def test_a_worse_challenger_is_rolled_back_on_the_metric_once_labels_arrive(
        project: Path, server: Any, variants: dict[str, str], receiver: Receiver) -> None:
    _crown(project, "1")
    state, _ = _drive(project, server, variants["worse"], labels=True)
    assert state["status"] == "rolled_back", state
    metric = state["decisions"][-1]["metric"]
    assert metric["verdict"] == "worse" and metric["p_value"] <= 0.05, metric
    assert not any(g["breached"] for g in state["decisions"][-1]["gates"])
    assert _aliases(project)["champion"] == "1"


def test_a_better_challenger_walks_every_step_and_becomes_champion(
        project: Path, server: Any, variants: dict[str, str], receiver: Receiver) -> None:
    _crown(project, variants["blurred"])  # a weak champion; v1's copy is better
    state, _ = _drive(project, server, variants["copy"], labels=True)
    try:
        assert state["status"] == "promoted", state
        assert [d["action"] for d in state["decisions"]] == \
            ["advance", "advance", "advance", "promote"]
        assert [e["weight"] for e in _rollout_events(project, state["id"])] == \
            [5, 25, 50, 100, 100]
        aliases = _aliases(project)
        assert aliases["champion"] == variants["copy"]
        assert aliases["previous_champion"] == variants["blurred"]  # kept for models rollback
        assert sum("rollout.promoted" in json.dumps(b) for b in receiver.bodies) == 1
        code, listed, _ = run_cli("models", "list", MODEL, "--tracking-uri",
                                  f"sqlite:///{project / 'mlflow.db'}")
        assert code == 0
        assert f"rollout advanced v{variants['copy']} to 25%" in listed
        assert f"rollout promoted v{variants['copy']} at 100%" in listed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server follows the alias
            traffic_after = Traffic(_port(server), flights(project), limit=20)
            traffic_after.run()
            if {a.version for a in traffic_after.answers} == {variants["copy"]}:
                break
            time.sleep(0.3)
        assert {a.version for a in traffic_after.answers} == {variants["copy"]}
    finally:
        _crown(project, "1")


def test_routing_is_sticky_by_key_and_near_the_step_share(
        project: Path, server: Any, variants: dict[str, str]) -> None:
    _crown(project, "1")
    spec = _held_spec(project, "held", steps=[25, 100])  # a rollout that stays at 25 %
    loaded = load_pipeline(spec)
    seen = server.output().count("25% of requests")
    state = rollout.start(loaded, variants["copy"], reason="sticky test")
    try:
        _wait_routing(server, 25, seen)
        keys = [f"customer-{i}" for i in range(400)]
        traffic = Traffic(_port(server), flights(project), keys=keys, limit=1200)
        traffic.run()
        by_key: dict[str, set[str]] = {}
        for i, answer in enumerate(traffic.answers):
            by_key.setdefault(keys[i % len(keys)], set()).add(answer.version)
        assert all(len(versions) == 1 for versions in by_key.values())  # 3 requests each
        share = sum(versions == {variants["copy"]} for versions in by_key.values()) / len(keys)
        assert 0.18 <= share <= 0.32, share
    finally:
        rollout.evaluate(loaded, command="abort")
    assert rollout.evaluate(loaded, act=False)["status"] == "rolled_back"
    assert state["weight"] == 25


def _held_spec(project: Path, name: str, **rollout_values: Any) -> Path:
    """A spec of the same model whose rollout never decides by itself (a person ends it)."""
    import yaml

    document = yaml.safe_load((project / SPEC).read_text())
    document["name"] = name
    document["rollout"].update(min_requests=100_000, **rollout_values)
    spec = project / "pipelines" / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(document, sort_keys=False))
    return spec


def _wait_routing(server: Any, weight: int, seen: int, timeout_s: float = 15) -> None:
    """Until the server has said once more (than `seen` times) that it routes `weight`%."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.output().count(f"{weight}% of requests") > seen:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server never routed {weight}%:\n{server.output()}")


def test_shadow_never_changes_an_answer_or_its_latency(
        project: Path, server: Any, variants: dict[str, str]) -> None:
    """Rounds of the same 120 requests, alone and mirrored to a shadow three times slower,
    interleaved so that the other work on the machine hits both alike."""
    _crown(project, "1")
    loaded = load_pipeline(_held_spec(project, "shadow", mode="shadow", steps=[100]))
    rows = flights(project)
    alone: list[Traffic] = []
    mirrored: list[Traffic] = []
    for round_ in range(3):
        alone.append(Traffic(_port(server), rows, prefix=f"alone{round_}-", limit=120))
        alone[-1].run()
        seen = server.output().count("mirrors 100% of requests")
        rollout.start(loaded, variants["slow"], reason="shadow test")
        try:
            _wait_routing(server, 100, seen)
            mirrored.append(Traffic(_port(server), rows, prefix=f"mirrored{round_}-",
                                    limit=120))
            mirrored[-1].run()
        finally:
            over = server.output().count("rollout over")
            rollout.evaluate(loaded, command="abort")
        _wait_for(server, "rollout over", over)
    for first, second in zip(alone, mirrored, strict=True):
        assert [a.prediction for a in second.answers] == [a.prediction for a in first.answers]
        assert {a.version for a in second.answers} == {"1"}
    p95 = [float(np.median([np.percentile([a.elapsed_s for a in t.answers], 95) for t in ts]))
           for ts in (alone, mirrored)]
    assert p95[1] <= 1.5 * p95[0] + 0.003, p95  # the shadow is 3x slower; answers are not
    time.sleep(1)  # the log's last flush
    log = prediction_log.read(prediction_log.log_folder(str(project / "artifacts"), MODEL))
    shadow = log[log[prediction_log.REQUEST_ID].astype(str).str.startswith("mirrored") &
                 (log[prediction_log.ROUTE] == "shadow")]
    assert len(shadow) >= 300 and set(shadow[prediction_log.MODEL_VERSION]) == {variants["slow"]}


def _wait_for(server: Any, text: str, seen: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.output().count(text) <= seen:
        time.sleep(0.1)
    assert server.output().count(text) > seen, server.output()


def test_a_killed_controller_is_resumed_and_two_controllers_never_both_act(
        project: Path, server: Any, variants: dict[str, str]) -> None:
    _crown(project, "1")
    spec = _held_spec(project, "held", steps=[25, 100])
    loaded = load_pipeline(spec)
    first = rollout.start(loaded, variants["copy"], reason="controller test")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    watch = [*LOOPLINE, "rollout", "watch", str(spec), "--every", "0.3"]
    one = _watcher(watch, project, env)
    try:
        two = subprocess.run(watch, cwd=project, env=env, capture_output=True, text=True,
                             timeout=120)
        assert two.returncode == 1
        assert f"another controller (pid {one.pid}" in two.stderr, two.stderr
        evaluate = subprocess.run([*LOOPLINE, "rollout", "evaluate", str(spec)], cwd=project,
                                  env=env, capture_output=True, text=True, timeout=120)
        assert evaluate.returncode == 1 and "another controller" in evaluate.stderr
    finally:
        one.send_signal(signal.SIGKILL)  # killed mid-step: no clean-up of its own
        one.wait()
    resumed = subprocess.run([*LOOPLINE, "rollout", "evaluate", str(spec), "--json"],
                             cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads(resumed.stdout)
    assert (state["id"], state["step"], state["step_started_at"], state["status"]) == \
        (first["id"], 0, first["step_started_at"], "running")
    assert state["controller"]["pid"] != one.pid
    ambiguous = subprocess.run([*LOOPLINE, "rollout", "status", MODEL], cwd=project, env=env,
                               capture_output=True, text=True, timeout=120)
    assert ambiguous.returncode == 2 and "name the spec file" in ambiguous.stderr
    three = _watcher(watch, project, env)  # a person's abort does not wait for the watcher
    try:
        aborted = subprocess.run([*LOOPLINE, "rollout", "abort", str(spec)], cwd=project,
                                 env=env, capture_output=True, text=True, timeout=120)
    finally:
        three.send_signal(signal.SIGTERM)
        three.wait(timeout=30)
    assert aborted.returncode == 0 and "rolled back" in aborted.stdout, aborted.stderr
    assert _aliases(project).get("canary") is None


def _watcher(command: list[str], project: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`loopline rollout watch` once it has said it is watching (it holds the lock then)."""
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline() if process.stdout else ""
    assert "watching" in line, line
    return process


def test_a_controller_killed_half_way_through_an_ending_is_finished_by_the_next(
        project: Path, server: Any, variants: dict[str, str]) -> None:
    """Crowned but killed before writing so: promoted, not rolled back. Rolled back but
    killed before the alias went: the alias goes, and no new rollout of it begins."""
    _crown(project, "1")
    loaded = load_pipeline(_held_spec(project, "held", steps=[25, 100]))
    promoted = rollout.start(loaded, variants["copy"], reason="killed while promoting")
    _crown(project, variants["copy"])  # the controller's crown, then SIGKILL
    state = rollout.evaluate(loaded)
    assert (state["id"], state["status"]) == (promoted["id"], "promoted")
    assert "canary" not in _aliases(project)
    assert [e["action"] for e in _rollout_events(project, promoted["id"])][-1] == "promoted"
    _crown(project, "1")
    rolled = rollout.start(loaded, variants["copy"], reason="killed while rolling back")
    uri = rs.state_uri(loaded)
    rs.write(uri, {**rs.read(uri), "status": "rolled_back", "weight": 0})  # then SIGKILL
    state = rollout.evaluate(loaded)
    assert (state["id"], state["status"]) == (rolled["id"], "rolled_back")
    assert "canary" not in _aliases(project) and _aliases(project)["champion"] == "1"
