"""A small HTTP/1.1 load generator: `loopline replay` and the serving benchmarks.

One thread, non-blocking sockets and a selector: N kept-alive connections to a loopback server,
each request a pre-encoded byte string sent in one `send` (no Nagle interplay on the client
side). Why not httpx or a thread per connection: on a 2-core machine the generator shares the
CPU with the server, so it has to cost as little as possible per request (measure it with
`python bench/_load.py`, which runs it against a canned-response server) and it must not add
GIL hand-offs between threads to the latencies it records.

Closed loop (`rate=None`): every connection sends its next request as soon as the previous
answer is in, so `concurrency` requests are always in flight. Open loop (`rate=R`): requests
are due at fixed times t0 + i/R whatever the server does; a due request waits for a free
connection (up to `concurrency` of them are opened) and its latency counts from when it was
due (noticed due: the poll's own lag of up to ~1 ms is left out and reported apart), so a slow
server cannot hide its queue (no coordinated omission).

Every run is bounded twice: `requests` and `time_limit_s` (whichever comes first); answers still
outstanding `grace_s` after the limit are counted as errors.
"""

from __future__ import annotations

import collections
import selectors
import socket
import time
from dataclasses import dataclass, field

RECV = 65536


def post(host: str, port: int, path: str, body: bytes,
         headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 POST with a JSON body, ready for one `send`."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def get(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), without numpy."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Result:
    """What one run saw. Latencies are milliseconds of answered requests (any status)."""

    concurrency: int
    rate: float | None
    sent: int = 0
    ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    connections: int = 0
    sample: bytes = b""  # the body of the first 200 answer, for a sanity check
    send_lag_ms: list[float] = field(default_factory=list)  # open loop: due -> noticed

    @property
    def failed(self) -> int:
        """Non-200 answers plus requests that got no answer (reset, timeout)."""
        return self.sent - self.ok

    @property
    def throughput(self) -> float:
        """200 answers per second of wall time, first send to last answer."""
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def client_us_per_request(self) -> float:
        return self.client_cpu_s / self.sent * 1e6 if self.sent else float("nan")

    def line(self) -> str:
        what = f"rate {self.rate:g}/s" if self.rate else f"c={self.concurrency}"
        text = (f"{what:>12}  n={self.sent:5d}  p50 {self.p(50):7.2f}  p95 {self.p(95):7.2f}  "
                f"p99 {self.p(99):7.2f} ms  {self.throughput:8.1f} req/s  "
                f"failed {self.failed}")
        if self.failed:
            text += f" {dict(self.statuses - collections.Counter({200: self.ok}))} " \
                    f"{dict(self.errors)}"
        return text


class _Conn:
    __slots__ = ("buf", "due", "index", "sock", "started")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.started = 0.0  # when the request in flight was sent
        self.due = 0.0  # when it was due (open loop); == started in a closed loop
        self.index = -1  # which request is in flight; -1: idle


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _parse(buf: bytearray) -> tuple[int, int, int, bool] | None:
    """(status, body start, end of this response, server closes) once a whole response is
    buffered, else None. Handles Content-Length and chunked bodies."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            close = value.strip().lower() == "close"
    start = head_end + 4
    if not chunked:
        end = start + length
        return (status, start, end, close) if len(buf) >= end else None
    at = start
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)  # no trailers: "0\r\n\r\n"
            return (status, start, trailer_end + 4, close) if trailer_end >= 0 else None
        at = line_end + 2 + size + 2
        if len(buf) < at:
            return None


def run(host: str, port: int, requests: list[bytes], *, count: int, concurrency: int = 1,
        time_limit_s: float = 30.0, rate: float | None = None, grace_s: float = 5.0) -> Result:
    """Send `count` requests (cycling through `requests`) over up to `concurrency` kept-alive
    connections; closed loop, or open loop at `rate` requests per second."""
    result = Result(concurrency=concurrency, rate=rate)
    selector = selectors.DefaultSelector()
    conns: list[_Conn] = []
    idle: collections.deque[_Conn] = collections.deque()
    backlog: collections.deque[tuple[int, float]] = collections.deque()  # (index, due)

    def open_conn() -> _Conn:
        conn = _Conn(_connect(host, port))
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        conns.append(conn)
        result.connections += 1
        return conn

    def reopen(conn: _Conn) -> _Conn:
        selector.unregister(conn.sock)
        conn.sock.close()
        conns.remove(conn)
        return open_conn()

    def send(conn: _Conn, index: int, due: float) -> bool:
        conn.index, conn.due = index, due
        conn.started = time.perf_counter()
        try:
            conn.sock.sendall(requests[index % len(requests)])
        except OSError as exc:  # the server closed a kept-alive connection: count, go on
            result.errors[type(exc).__name__] += 1
            conn.index = -1
            idle.append(reopen(conn))
            return False
        return True

    # Closed loop: the connections exist before the clock starts (their set-up is not a
    # request's latency). Open loop: one to start with, more as due requests find none free.
    for _ in range(concurrency if rate is None else 1):
        idle.append(open_conn())
    cpu_before = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    next_index = 0
    last_answer = t0
    in_flight = 0

    def dispatch(now: float) -> None:
        nonlocal next_index, in_flight
        if rate is None:
            while idle and next_index < count and now < deadline:
                in_flight += send(idle.popleft(), next_index, now)
                result.sent += 1
                next_index += 1
            return
        while next_index < count and t0 + next_index / rate <= now and now < deadline:
            # From when it was noticed due: the poll wakes up to ~1 ms late (epoll counts
            # milliseconds), which is the generator's lag, not the server's.
            result.send_lag_ms.append((now - t0 - next_index / rate) * 1000)
            backlog.append((next_index, now))
            result.sent += 1
            next_index += 1
        while backlog:
            if not idle:
                if len(conns) >= concurrency:
                    return
                idle.append(open_conn())
            index, due = backlog.popleft()
            in_flight += send(idle.popleft(), index, due)

    dispatch(t0)
    while True:
        now = time.perf_counter()
        sending = next_index < count and now < deadline
        if not sending and in_flight == 0 and not backlog:
            break
        if not sending and now > deadline + grace_s:
            break
        if rate is not None and sending:
            timeout = max(0.0, t0 + next_index / rate - now)
        else:
            timeout = max(0.0, (deadline if sending else deadline + grace_s) - now)
        for key, _ in selector.select(min(timeout, 1.0)):
            conn: _Conn = key.data
            try:
                data = conn.sock.recv(RECV)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                data, error = b"", type(exc).__name__
            else:
                error = "closed by server"
            if not data:
                if conn.index >= 0:
                    result.errors[error] += 1
                    in_flight -= 1
                conn.index = -1
                idle.append(reopen(conn))
                continue
            conn.buf += data
            parsed = _parse(conn.buf)
            if parsed is None:
                continue
            answered = time.perf_counter()
            status, body_start, end, close = parsed
            result.latencies_ms.append((answered - conn.due) * 1000)
            result.statuses[status] += 1
            if status == 200:
                result.ok += 1
                if not result.sample:
                    result.sample = bytes(conn.buf[body_start:end])
            del conn.buf[:end]
            conn.index = -1
            in_flight -= 1
            last_answer = answered
            idle.append(reopen(conn) if close else conn)
        dispatch(time.perf_counter())
    for _ in range(in_flight):
        result.errors["no answer in time"] += 1
    result.errors["never sent (no free connection)"] += len(backlog)
    result.errors = +result.errors
    result.elapsed_s = last_answer - t0
    result.client_cpu_s = time.process_time() - cpu_before
    for conn in conns:
        selector.unregister(conn.sock)
        conn.sock.close()
    selector.close()
    return result
