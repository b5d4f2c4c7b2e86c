"""A local OpenAI-compatible `/v1/embeddings` server with a fixed latency and capacity, for tests and benchmarks."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class EmbeddingsBehaviour:
    dim: int = 8
    model: str = "mock-embedder"
    latency_s: float = 0.0  # time each request occupies one of `capacity` slots
    capacity: int = 1_000  # requests served at once; more wait for a slot
    fail_first: int = 0  # answer this many requests with `fail_status` before succeeding
    fail_status: int = 503
    hang_s: float = 0.0  # sleep this long before answering (longer than the client's timeout = a timeout)
    same_vector: bool = (
        False  # every text gets one cached vector (benchmarks: keeps the server's own CPU small)
    )
    base64: bool = True  # honour encoding_format=base64 (false: refuse it with 400, like some servers)
    requests: list[dict[str, Any]] = field(default_factory=list)
    busy_s: float = 0.0  # total slot time spent serving requests
    max_concurrent: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore | None = None


def vector_for(text: str, dim: int) -> list[float]:
    """A deterministic vector per text, so tests can check order."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).normal(size=dim).tolist()


def _b64(vector: list[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _unit(dim: int) -> list[float]:
    return [1.0] + [0.0] * (dim - 1)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        b: EmbeddingsBehaviour = self.server.behaviour  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with b._lock:
            b.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            failing = len(b.requests) <= b.fail_first
        if b.hang_s:
            time.sleep(b.hang_s)
        if failing:
            self._send(b.fail_status, {"error": {"message": "mock failure"}})
            return
        as_base64 = body.get("encoding_format") == "base64"
        if as_base64 and not b.base64:
            self._send(400, {"error": {"message": "encoding_format must be float"}})
            return
        assert b._slots is not None
        with b._slots:
            started = time.perf_counter()
            with b._lock:
                b._active += 1
                b.max_concurrent = max(b.max_concurrent, b._active)
            time.sleep(b.latency_s)
            texts = body.get("input", [])
            if b.same_vector:
                vectors = [_unit(b.dim)] * len(texts)
            else:
                vectors = [vector_for(text, b.dim) for text in texts]
            data = [
                {"object": "embedding", "index": i, "embedding": _b64(v) if as_base64 else v}
                for i, v in enumerate(vectors)
            ]
            with b._lock:
                b._active -= 1
                b.busy_s += time.perf_counter() - started
        self._send(200, {"object": "list", "model": b.model, "data": data})

    def do_GET(self) -> None:
        b: EmbeddingsBehaviour = self.server.behaviour  # type: ignore[attr-defined]
        if self.path == "/reset":
            b.busy_s, b.max_concurrent = 0.0, 0
        self._send(200, {"busy_s": b.busy_s, "max_concurrent": b.max_concurrent, "requests": len(b.requests)})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


class EmbeddingsServer:
    """Real HTTP on a free port; `url` is the base to give `RAG_EMBEDDING_URL`."""

    def __init__(self, behaviour: EmbeddingsBehaviour | None = None) -> None:
        self.behaviour = behaviour or EmbeddingsBehaviour()
        self.behaviour._slots = threading.Semaphore(self.behaviour.capacity)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.behaviour = self.behaviour  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EmbeddingsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    """Serve in its own process (benchmarks): prints the URL, serves until killed."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--capacity", type=int, default=4)
    args = parser.parse_args()
    behaviour = EmbeddingsBehaviour(
        dim=args.dim, latency_s=args.latency_ms / 1000, capacity=args.capacity, same_vector=True
    )
    with EmbeddingsServer(behaviour) as server:
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
