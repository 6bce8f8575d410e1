"""The load generator (loopline.serving.loadgen, via bench/_load.py) against real loopback
servers: the canned-response server of its ceiling check and small socket servers."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
_spec = importlib.util.spec_from_file_location("bench_load", BENCH / "_load.py")
assert _spec is not None and _spec.loader is not None
load = importlib.util.module_from_spec(_spec)
sys.modules["bench_load"] = load
_spec.loader.exec_module(load)

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def canned() -> Iterator[int]:
    """The generator's own ceiling server (uvloop, canned 200), a real process."""
    port = load.free_port()
    process = load.start([sys.executable, str(BENCH / "_load.py"), "--canned-server",
                          str(port)])
    try:
        load.wait_ready(HOST, port, "/", process, timeout_s=30)
        yield port
    finally:
        load.stop(process)


def socket_server(handle: Callable[[socket.socket], None]) -> tuple[int, Callable[[], None]]:
    """A thread that hands each accepted connection to `handle`; (port, stop)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stopped = threading.Event()

    def serve() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()

    def stop() -> None:
        stopped.set()
        listener.close()

    return listener.getsockname()[1], stop


def body(port: int) -> bytes:
    return load.post(HOST, port, "/predict", b'{"inputs": {"distance": 1000}}')


def test_parse_waits_for_whole_answers_and_reads_chunked_bodies() -> None:
    whole = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    assert load._parse(bytearray(whole[:-1])) is None
    assert load._parse(bytearray(whole + b"HTTP/1.1")) == (200, 38, 43, False)
    chunked = (b"HTTP/1.1 422 X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    status, _start, end, close = load._parse(bytearray(chunked))
    assert (status, end, close) == (422, len(chunked), True)
    assert load._parse(bytearray(chunked[:-2])) is None


def test_percentile_matches_numpy() -> None:
    values = list(np.random.default_rng(0).exponential(size=999))
    for q in (50, 95, 99, 100):
        assert load.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_closed_loop_sends_exactly_the_count_over_kept_alive_connections(canned: int) -> None:
    result = load.run(HOST, canned, [body(canned)], count=500, concurrency=8,
                      time_limit_s=20)
    assert (result.sent, result.ok, result.failed, result.connections) == (500, 500, 0, 8)
    assert len(result.latencies_ms) == 500 and result.sample == b'{"prediction":0.25}'
    assert 0 < result.p(50) <= result.p(99) < 1000 and result.throughput > 100


def test_closed_loop_stops_at_the_time_limit(canned: int) -> None:
    started = time.perf_counter()
    result = load.run(HOST, canned, [body(canned)], count=10**9, concurrency=4,
                      time_limit_s=0.5)
    assert time.perf_counter() - started < 3
    assert 0 < result.sent < 10**9 and result.failed == 0


def test_open_loop_keeps_its_rate(canned: int) -> None:
    result = load.run(HOST, canned, [body(canned)], count=100, concurrency=4, rate=200,
                      time_limit_s=20)
    assert result.ok == 100
    assert 0.48 < result.elapsed_s < 1.0  # 100 requests due at 200/s: the last at 0.495 s
    assert result.connections <= 4


def test_non_200_and_closed_connections_are_counted_not_fatal() -> None:
    def refuse(conn: socket.socket) -> None:  # 503 and close, every time
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    port, stop = socket_server(refuse)
    try:
        result = load.run(HOST, port, [body(port)], count=40, concurrency=2, time_limit_s=10)
    finally:
        stop()
    assert (result.sent, result.ok, result.failed) == (40, 0, 40)
    assert result.statuses == {503: 40}


def test_a_server_that_never_answers_costs_the_limit_plus_grace() -> None:
    def hold(conn: socket.socket) -> None:
        conn.recv(65536)
        time.sleep(5)
        conn.close()

    port, stop = socket_server(hold)
    started = time.perf_counter()
    try:
        result = load.run(HOST, port, [body(port)], count=10, concurrency=2, time_limit_s=0.3,
                          grace_s=0.3)
    finally:
        stop()
    assert time.perf_counter() - started < 2.5
    assert (result.sent, result.ok) == (2, 0)
    assert result.errors == {"no answer in time": 2}


def test_medians_of_repeated_runs_are_medians_and_totals() -> None:
    from loopline.serving.loadgen import Result

    runs = [Result(concurrency=8, rate=None, sent=n, ok=n - failed, elapsed_s=1.0,
                   latencies_ms=[float(ms)] * 100, client_cpu_s=n * 30e-6)
            for n, failed, ms in ((100, 0, 10), (300, 2, 30), (200, 1, 20))]
    figures = load.medians(runs)
    assert figures["p50"] == figures["p99"] == 20.0  # the middle run's, not an average
    assert figures["rps"] == 199.0 and figures["n"] == 600 and figures["failed"] == 3
    assert figures["gen_us"] == pytest.approx(30.0)
