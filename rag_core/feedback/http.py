"""Kubernetes probes and Prometheus scraping for a bot process: /healthz, /readyz, /metrics on one port.

A stdlib threaded HTTP server in a daemon thread, so it runs next to any event loop (Bolt, discord.py).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder

from rag_core.errors import RagbotError, UserError
from rag_core.feedback.metrics import REGISTRY

log = logging.getLogger(__name__)

Check = Callable[[], bool]
Emit = Callable[[dict[str, Any]], None]
# A loopback-only POST route: called with the JSON body and `emit`, which sends one NDJSON line at once.
LocalRoute = Callable[[dict[str, Any], Emit], None]
_LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def qdrant_ready(client: Any) -> bool:
    """True when the Qdrant server (or embedded store) behind a `qdrant_client.QdrantClient` answers."""
    try:
        client.get_collections()
        return True
    except Exception as exc:  # noqa: BLE001 - connection refused, timeout, auth: all mean not ready
        log.warning("qdrant not ready", extra={"event": "qdrant_not_ready", "error": type(exc).__name__})
        return False


def readiness(
    engine: Any = None, kv: Any = None, checks: Mapping[str, Check] | None = None
) -> dict[str, bool]:
    """Every readiness check by name: the engine's own (store, models, ...), Redis when given, extra checks."""
    results: dict[str, bool] = {}
    if engine is not None:
        try:
            results.update({name: bool(ok) for name, ok in engine.ready().items()})
        except Exception as exc:  # noqa: BLE001 - a readiness probe reports False, it never raises
            log.warning(
                "engine readiness failed", extra={"event": "engine_not_ready", "error": type(exc).__name__}
            )
            results["engine"] = False
    if kv is not None and "redis" not in results and getattr(kv, "url", None):  # only a configured Redis
        results["redis"] = _safe(kv.ping)
    for name, check in (checks or {}).items():
        results[name] = _safe(check)
    return results


def _safe(check: Check) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a failing check means not ready
        return False


class HealthServer:
    """A running probe server; `.port` is the bound port (useful with port 0), `.stop()` shuts it down."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(
    ready: Callable[[], dict[str, bool]], local: Mapping[str, LocalRoute]
) -> type[BaseHTTPRequestHandler]:
    class ProbeHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._send(200, "application/json", b'{"status": "ok"}')
            elif path == "/readyz":
                results = ready()
                failed = sorted(name for name, ok in results.items() if not ok)
                body = {"status": "ready" if not failed else "not ready", "checks": results, "failed": failed}
                self._send(503 if failed else 200, "application/json", json.dumps(body).encode())
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encoder(REGISTRY))
            else:
                self._send(
                    404, "application/json", b'{"error": "not found; try /healthz, /readyz, /metrics"}'
                )

        def do_POST(self) -> None:
            route = local.get(urlsplit(self.path).path)
            if route is None:
                self._send(404, "application/json", b'{"error": "not found"}')
                return
            if (
                self.client_address[0] not in _LOOPBACK
            ):  # terminal use on this machine only, never the network
                self._send(403, "application/json", b'{"error": "local callers only"}')
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._send(400, "application/json", b'{"error": "the body must be a JSON object"}')
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")  # the body ends when the connection does
            self.end_headers()
            self.close_connection = True

            def emit(event: dict[str, Any]) -> None:
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()

            try:
                route(body, emit)
            except RagbotError as exc:  # a one-line message meant for the person asking
                emit({"error": str(exc)})
            except Exception:
                log.exception("local request failed", extra={"event": "local_request_failed"})
                emit({"error": "the running bot failed to answer; its log has the details"})

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the logs

    return ProbeHandler


def serve_health(
    port: int,
    engine: Any = None,
    kv: Any = None,
    checks: Mapping[str, Check] | None = None,
    host: str = "0.0.0.0",
    local: Mapping[str, LocalRoute] | None = None,
) -> HealthServer:
    """Serve /healthz (alive), /readyz (engine.ready() all true, Redis pings when configured) and /metrics.

    `local` adds POST routes answered to loopback callers only (`ragbot ask` in a terminal while this process
    holds the embedded index). Port 0 binds a free port (see `.port`). Returns at once; the server runs in a
    daemon thread.
    """
    try:
        server = ThreadingHTTPServer(
            (host, port), _handler(lambda: readiness(engine, kv, checks), local or {})
        )
    except OSError as exc:
        raise UserError(
            f"cannot serve /healthz, /readyz, /metrics on {host}:{port}: {exc.strerror or exc}"
        ) from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"health-http-{port}", daemon=True)
    thread.start()
    log.info("health server listening", extra={"event": "health_listening", "port": server.server_address[1]})
    return HealthServer(server, thread)
