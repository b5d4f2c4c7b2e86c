"""Every HTTP server of ragbot listens through here: one TCP socket maker and one uvicorn setup.

The socket is made as TCP (`IPPROTO_TCP`) with TCP_NODELAY: asyncio sets TCP_NODELAY on accepted connections only
for sockets it knows are TCP, and without it a keep-alive request waits ~40 ms for delayed ACKs (Nagle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from rag_core.errors import UserError

log = logging.getLogger(__name__)


def listen(host: str, port: int, what: str = "HTTP") -> socket.socket:
    """A bound, listening TCP socket with TCP_NODELAY (inherited by accepted connections); a taken port is
    one clear `UserError` line naming `what` is served there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # listening now: a second bind of the port fails here, even with SO_REUSEADDR
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops its servers itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(app: Any, graceful_s: int = 5) -> QuietServer:
    # No access log: it would print query strings (login secrets); the front door logs its own line.
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=graceful_s
    )
    return QuietServer(config)


async def serve(app: Any, sock: socket.socket) -> None:
    """Serve `app` on `sock` on the running loop until cancelled; in-flight requests get a few seconds to end."""
    srv = server(app)
    serving = asyncio.ensure_future(srv.serve(sockets=[sock]))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        srv.should_exit = True
        await serving
        raise


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread with its own loop (tests, benchmarks, processes whose
    main loop is not asyncio's). `.port` and `.url` say where; `.stop()` shuts it down."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, what: str = "HTTP") -> None:
        self._sock = listen(host, port, what)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{self.port}"
        self._server = server(app)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if not self._server.started:
            raise UserError(f"{what} did not start on port {self.port}")

    def _run(self) -> None:
        async def main() -> None:
            task = asyncio.ensure_future(self._server.serve(sockets=[self._sock]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.005)  # uvicorn sets `started` without an event to wait on
            self._started.set()
            await task

        try:
            asyncio.run(main())
        finally:
            self._started.set()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()
