"""Loopline's uvicorn protocol turns Nagle's algorithm off on every accepted connection.

Under `--workers` uvicorn binds one socket and hands it to each worker; on the asyncio loop
the connections accepted from it keep Nagle's algorithm on (uvicorn #3149), and a kept-alive
connection then waits ~40 ms for the client's delayed ACK on every response
(bench/asgi_stacks.py measured p50 72 ms instead of 18 ms). A real uvicorn server on
127.0.0.1 started the way a worker is, a real connection; the option is read from the
accepted socket itself."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loopline.serving.server import NoDelayHttpTools


def _recording(base: type) -> tuple[type, list[int]]:
    seen: list[int] = []

    class Recording(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    return Recording, seen


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _nodelay_as_a_worker_accepts(protocol: type, loop: str) -> list[int]:
    recording, seen = _recording(protocol)
    config = uvicorn.Config(_app, host="127.0.0.1", port=0, http=recording, loop=loop,
                            log_level="warning", lifespan="off")
    listener = config.bind_socket()  # what `--workers` does: one socket, given to each worker
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(listener.getsockname()[:2], timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in client.recv(1024)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()
    return seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_accepted_connections_have_tcp_nodelay(loop: str) -> None:
    seen = _nodelay_as_a_worker_accepts(NoDelayHttpTools, loop)
    assert seen and all(value != 0 for value in seen)


def test_the_trap_is_real_without_it() -> None:
    """uvicorn's own protocol on the asyncio loop, as a worker: Nagle stays on. (If this
    starts failing, uvicorn fixed #3149 and the subclass may go.)"""
    seen = _nodelay_as_a_worker_accepts(HttpToolsProtocol, "asyncio")
    assert seen == [0]
