"""Real processes and servers the fault tests start, break and bring back.

- `RedisProcess`: a `redis-server` child process on a fixed port, killed with SIGKILL and started again.
- `TcpProxy`: an asyncio TCP proxy in a thread; `cut()` drops every connection and refuses new ones, `restore()`
  listens again on the same port. PostgreSQL is reached through it.
- `QdrantStandIn`: there is no Qdrant server binary on this machine (nor a way to fetch one), so a small HTTP
  server answers the four read endpoints of Qdrant's REST API that answering uses (`GET /collections`,
  `GET /collections/{c}/exists`, `POST /collections/{c}/points`, `POST /collections/{c}/points/query/batch`) from a
  qdrant-client in-memory index. The real qdrant-client talks HTTP to it; `stop()` closes the port (connection
  refused, as when a server dies), `start()` serves again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

import redis
from qdrant_client import QdrantClient, models

from tests.conftest import _redis_server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, timeout_s: float = 30.0, every_s: float = 0.02) -> float:
    """Seconds until `check()` is true (raises AssertionError after `timeout_s`)."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not true after {timeout_s} s: {check}")
        time.sleep(every_s)


def readyz(url: str) -> int:
    """The HTTP status of a health server's /readyz."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class RedisProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [_redis_server_binary(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping(), 10)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1)


class TcpProxy:
    """127.0.0.1:<port> → upstream, in its own event loop thread. While cut, the port stays bound but does not
    listen (connections are refused), so no other process, such as a parallel test run, can take it and answer in
    the upstream's place."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._holder: socket.socket | None = None  # holds the port while cut
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.restore()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, up_w}
        await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        self._writers -= {client_w, up_w}

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True, reuse_port=True
        )
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    async def _cut(self) -> None:
        if self._server is not None:
            self._holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._holder.bind(("127.0.0.1", self.port))  # bound, not listening: connections are refused
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the database host goes away
        self._writers.clear()

    def restore(self) -> None:
        self._run(self._listen())

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        self.cut()
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        self._run(self._cancel_handlers())  # else they are garbage-collected pending, noisily, at exit
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _cancel_handlers(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class QdrantStandIn:
    def __init__(self, local: QdrantClient) -> None:
        self.local = local
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._httpd: HTTPServer | None = None

    def start(self) -> None:
        self._httpd = HTTPServer(("127.0.0.1", self.port), _qdrant_handler(self.local))
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _qdrant_handler(local: QdrantClient) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, result: Any) -> None:
            body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts == ["collections"]:
                self._reply(local.get_collections().model_dump(mode="json"))
            elif len(parts) == 3 and parts[2] == "exists":
                self._reply({"exists": local.collection_exists(parts[1])})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if parts[2:] == ["points"]:
                req = models.PointRequest(**body)
                records = local.retrieve(parts[1], ids=req.ids, with_payload=req.with_payload or True)
                self._reply([r.model_dump(mode="json") for r in records])
            elif parts[2:] == ["points", "query", "batch"]:
                searches = models.QueryRequestBatch(**body).searches
                responses = local.query_batch_points(parts[1], requests=searches)
                self._reply([r.model_dump(mode="json") for r in responses])
            else:
                self.send_error(404)

    return Handler
