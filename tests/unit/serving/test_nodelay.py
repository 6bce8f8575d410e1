"""Loopline's uvicorn protocol turns Nagle's algorithm off on every accepted connection.

uvicorn leaves it on under `--workers` (uvicorn #3149): a kept-alive connection then waits
~40 ms for the client's delayed ACK on every response. A real uvicorn server on 127.0.0.1,
a real connection; the socket option is read from the accepted socket itself."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from loopline.serving.server import NoDelayHttpTools

seen: list[int] = []


class _Recording(NoDelayHttpTools):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_accepted_connections_have_tcp_nodelay() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, http=_Recording,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in client.recv(1024)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert seen and all(value != 0 for value in seen)
