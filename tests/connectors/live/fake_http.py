"""A small threaded HTTP server for fake APIs: request log, injected faults, and a gate a request can block on.

Subclasses implement `route(req) -> Reply`. Faults are queued per path prefix and consumed in order; a gate
makes the N-th matching request wait until the test releases it (or kills the client), so tests never sleep.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Gate:
    """Block the `nth` request whose path contains `path` until `release` is set."""

    path: str
    nth: int
    seen: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class FakeApi:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[tuple[str, Reply]] = []  # (path substring, reply) consumed in order
        self.gates: list[Gate] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(parts.query)
                if method == "POST" and self.headers.get("Content-Type", "").startswith(
                    "application/x-www-form-urlencoded"
                ):
                    query.update(parse_qs(body.decode()))
                req = Request(
                    method, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body
                )
                reply = api.handle(req)
                data = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else json.dumps(reply.body if reply.body is not None else {}).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed while we waited at a gate

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        for gate in self.gates:
            gate.release.set()
        self.server.shutdown()
        self.server.server_close()

    def fail(self, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        """The next request whose path contains `path` gets this reply instead."""
        self.faults.append((path, Reply(status, body or {"message": "injected"}, headers or {})))

    def gate(self, path: str, nth: int = 1) -> Gate:
        gate = Gate(path, nth)
        self.gates.append(gate)
        return gate

    def calls(self, path: str = "") -> int:
        return sum(1 for r in self.requests if path in r.path)

    def handle(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            fault = next((f for f in self.faults if f[0] in req.path), None)
            if fault is not None:
                self.faults.remove(fault)
            waiting = None
            for gate in self.gates:
                if gate.path in req.path:
                    gate.seen += 1
                    if gate.seen == gate.nth:
                        waiting = gate
        if waiting is not None:
            waiting.reached.set()
            waiting.release.wait(300)
        if fault is not None:
            return fault[1]
        with self._lock:
            return self.route(req)

    def route(self, req: Request) -> Reply:
        raise NotImplementedError
