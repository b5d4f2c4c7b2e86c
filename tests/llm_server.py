"""A local OpenAI-compatible chat server that streams SSE like the real API, for generation tests."""

from __future__ import annotations

import json
import threading
import time
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
    requests: list[dict[str, Any]] = field(default_factory=list)


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
            self._complete(reply)
            return
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
