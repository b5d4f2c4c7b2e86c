"""A local OpenAI-compatible chat server that streams SSE like the real API, for generation tests."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class LLMBehaviour:
    reply: str = "The answer is in the runbook [1]."
    script: list[str] = field(default_factory=list)  # replies given in order, one per request, before `reply`
    fail_first: int = 0  # answer this many requests with HTTP 500 before succeeding
    status: int = 200  # non-200: every request fails with it
    break_after_tokens: int | None = None  # drop the connection mid-stream after this many tokens
    delay_s: float = 0.0  # before the first byte
    hold_after_tokens: int | None = (
        None  # stream this many tokens, then hold until `release` or the client leaves
    )
    hold_completions: bool = False  # hold every non-streamed completion until `release` or the client leaves
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_streams: int = 0  # streamed responses being sent right now
    max_open_streams: int = 0
    closed_by_client: int = 0  # streams the client closed before their end
    open_completions: int = 0  # non-streamed completions being held right now
    max_open_completions: int = 0
    changed: threading.Condition = field(
        default_factory=threading.Condition
    )  # notified on every count change

    def wait_for(self, predicate: Callable[[LLMBehaviour], bool], timeout: float = 60) -> bool:
        """Wait until `predicate(self)` holds (checked on every stream opened or closed); False on timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def _count(self, opened: int = 0, closed_by_client: int = 0, completions: int = 0) -> None:
        with self.changed:
            self.open_streams += opened
            self.max_open_streams = max(self.max_open_streams, self.open_streams)
            self.open_completions += completions
            self.max_open_completions = max(self.max_open_completions, self.open_completions)
            self.closed_by_client += closed_by_client
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    behaviour: LLMBehaviour

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        b = self.server.behaviour  # type: ignore[attr-defined]
        b.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if b.delay_s:
            time.sleep(b.delay_s)
        failing = b.status != 200 or len(b.requests) <= b.fail_first
        if failing:
            status = b.status if b.status != 200 else 500
            payload = json.dumps(
                {"error": {"message": "test server failure", "type": "server_error"}}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        reply = b.script.pop(0) if b.script else b.reply
        if not body.get("stream"):
            if b.hold_completions:
                b._count(completions=1)
                try:
                    if not self._hold(b):
                        return
                finally:
                    b._count(completions=-1)
            self._complete(reply)
            return
        b._count(opened=1)
        try:
            self._stream(b, reply)
        except (BrokenPipeError, ConnectionResetError):
            b._count(closed_by_client=1)
        finally:
            b._count(opened=-1)

    def _stream(self, b: LLMBehaviour, reply: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        tokens = [t + " " for t in reply.split(" ")]
        tokens[-1] = tokens[-1].rstrip()
        for i, token in enumerate(tokens):
            if b.break_after_tokens is not None and i >= b.break_after_tokens:
                self.wfile.flush()
                self.connection.close()
                return
            if b.hold_after_tokens is not None and i == b.hold_after_tokens and not self._hold(b):
                b._count(closed_by_client=1)
                return
            self._event({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 321,
                    "completion_tokens": len(tokens),
                    "total_tokens": 321 + len(tokens),
                },
            }
        )
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _hold(self, b: LLMBehaviour) -> bool:
        """Wait for `release`; False as soon as the client closes the connection (it reads as end of file)."""
        while not b.release.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
        return True

    def _complete(self, reply: str) -> None:
        """A non-streamed chat completion, as the API answers `stream: false`."""
        payload = json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": "test-model",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _event(self, data: dict[str, Any]) -> None:
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "test-model"}
        self.wfile.write(f"data: {json.dumps({**base, **data})}\n\n".encode())
        self.wfile.flush()


class LLMServer:
    def __init__(self) -> None:
        self.behaviour = LLMBehaviour()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.behaviour = self.behaviour  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reset(self, **changes: Any) -> LLMBehaviour:
        fresh = LLMBehaviour(**changes)
        self.behaviour.__dict__.update(fresh.__dict__)
        return self.behaviour

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
