"""Bench helpers around Loopline's load generator (`loopline.serving.loadgen`, which
`loopline replay` uses too): readiness checks, server processes that are always stopped, and
the generator's own ceiling.

The generator: one thread, non-blocking sockets and a selector, N kept-alive HTTP/1.1
connections, each request one pre-encoded `send`; closed loop (concurrency N) or open loop at a
fixed rate with latency counted from when each request was due; bounded by a request count and
a time limit. `python bench/_load.py` measures what it can drive here: against a canned-response
server it costs 20-45 us of CPU per request, so it is not what limits a model server.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loopline.serving.loadgen import RECV, Result, _parse, get, percentile, post, run

__all__ = ["Result", "fetch", "free_port", "get", "percentile", "post", "run", "start",
           "stop", "wait_ready"]


def fetch(host: str, port: int, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on its own connection: (status, body). For readiness checks."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        buf = bytearray()
        while (parsed := _parse(buf)) is None:
            data = sock.recv(RECV)
            if not data:
                raise ConnectionError("closed before a whole answer")
            buf += data
    status, start, end, _ = parsed
    return status, bytes(buf[start:end])


def wait_ready(host: str, port: int, path: str, process: subprocess.Popen,
               timeout_s: float = 120.0) -> float:
    """Seconds until GET `path` answers 200; raises if the process dies or time runs out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            if fetch(host, port, get(host, port, path), timeout=2.0)[0] == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{host}:{port}{path} not ready after {timeout_s:.0f} s")


def exit_on_sigterm() -> None:
    """SIGTERM (and SIGINT, ignored in background jobs) unwinds like Ctrl-C, so the
    bench's `finally` stops its servers."""
    import signal

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL; the server's own children go with its process group."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
    except ProcessLookupError:
        return
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(10)


def start(command: list[str], log: Path | None = None,
          **kwargs: Any) -> subprocess.Popen:
    """A server in its own process group (so `stop` reaches its workers too); its output
    goes to `log` (a file, never a pipe nobody reads)."""
    with open(log or os.devnull, "ab") as out:
        return subprocess.Popen(command, start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT, **kwargs)


# --- the generator's own ceiling -----------------------------------------------------------

CANNED = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n"
          b'{"prediction":0.25}')


def canned_server(port: int) -> None:
    """The cheapest server we can write: parse Content-Length, answer a canned 200."""
    import asyncio

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                length = 0
                for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buf) < end + 4 + length:
                    return
                del self.buf[:end + 4 + length]
                self.transport.write(CANNED)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def ceiling(repeats: int = 3) -> None:
    """The generator against the canned server: its throughput there and its CPU cost per
    request, which bounds what it can drive while sharing the 2 cores with a real server."""
    exit_on_sigterm()
    port = free_port()
    server = start([sys.executable, __file__, "--canned-server", str(port)])
    try:
        wait_ready("127.0.0.1", port, "/", server, timeout_s=20)
        body = post("127.0.0.1", port, "/predict", b'{"inputs": {"distance": 1000}}')
        print(f"## Load generator ceiling: canned-response server (uvloop), {os.cpu_count()} "
              "cores shared by both")
        for concurrency in (1, 8, 32):
            results = [run("127.0.0.1", port, [body], count=20000, concurrency=concurrency,
                           time_limit_s=10) for _ in range(repeats)]
            best = sorted(results, key=lambda r: r.throughput)[len(results) // 2]
            print(f"{best.line()}  generator CPU {best.client_us_per_request:.0f} us/request")
    finally:
        stop(server)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--canned-server":
        canned_server(int(sys.argv[2]))
    else:
        ceiling()


def medians(runs: list[Result]) -> dict[str, float]:
    """What a bench reports for repeated runs of one load: median percentiles and
    throughput, total requests and failures, the generator's own CPU per request."""
    return {"p50": statistics.median(r.p(50) for r in runs),
            "p95": statistics.median(r.p(95) for r in runs),
            "p99": statistics.median(r.p(99) for r in runs),
            "rps": statistics.median(r.throughput for r in runs),
            "n": sum(r.sent for r in runs), "failed": sum(r.failed for r in runs),
            "gen_us": statistics.median(r.client_us_per_request for r in runs)}
