"""Kubernetes probes and Prometheus scraping: /healthz, /readyz, /metrics (and the terminal's loopback routes).

`health_routes` are what the bot's front door (bot/front_door.py) serves beside Slack and the API on one port;
`serve_health` serves them alone in a thread, for a process with no front door (`ragbot schedule`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rag_core.errors import RagbotError
from rag_core.feedback.metrics import REGISTRY
from rag_core.feedback.serving import ThreadedServer

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

    def __init__(self, server: ThreadedServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    def stop(self) -> None:
        self._server.stop()


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body), status, media_type="application/json")


def health_routes(
    ready: Callable[[], dict[str, bool]], local: Mapping[str, LocalRoute] | None = None
) -> list[Route]:
    """/healthz, /readyz, /metrics and the loopback-only `local` POST routes, as Starlette routes (the front
    door mounts them beside everything else)."""

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        results = await asyncio.to_thread(ready)  # pings the store and Redis: never on the loop
        failed = sorted(name for name, ok in results.items() if not ok)
        body = {"status": "ready" if not failed else "not ready", "checks": results, "failed": failed}
        return _json(503 if failed else 200, body)

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), 200, headers={"Content-Type": content_type})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for path, route in (local or {}).items():
        routes.append(Route(path, _local_endpoint(route), methods=["POST"]))
    return routes


def _local_endpoint(route: LocalRoute) -> Callable[[Request], Awaitable[Response]]:
    """A loopback-only POST route: the sync `route` runs in a thread, its events stream back as NDJSON."""

    async def endpoint(request: Request) -> Response:
        if request.client is None or request.client.host not in _LOOPBACK:
            return _json(403, {"error": "local callers only"})  # terminal use on this machine only
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _json(400, {"error": "the body must be a JSON object"})
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def emit(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(lines.put_nowait, json.dumps(event).encode() + b"\n")

        def work() -> None:
            try:
                route(body, emit)
            except RagbotError as exc:  # a one-line message meant for the person asking
                emit({"error": str(exc)})
            except Exception:
                log.exception("local request failed", extra={"event": "local_request_failed"})
                emit({"error": "the running bot failed to answer; its log has the details"})
            finally:
                loop.call_soon_threadsafe(lines.put_nowait, None)

        loop.run_in_executor(None, work)

        async def stream() -> AsyncIterator[bytes]:
            while (line := await lines.get()) is not None:
                yield line

        # the body ends when the connection does
        return StreamingResponse(stream(), media_type="application/x-ndjson", headers={"Connection": "close"})

    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json(404, {"error": "not found; try /healthz, /readyz, /metrics"})


def health_app(
    ready: Callable[[], dict[str, bool]], local: Mapping[str, LocalRoute] | None = None
) -> Starlette:
    """The probe routes alone as an ASGI app (`ragbot schedule`, tests)."""
    return Starlette(
        routes=health_routes(ready, local), exception_handlers={404: _not_found, 405: _not_found}
    )


def serve_health(
    port: int,
    engine: Any = None,
    kv: Any = None,
    checks: Mapping[str, Check] | None = None,
    host: str = "0.0.0.0",
    local: Mapping[str, LocalRoute] | None = None,
) -> HealthServer:
    """Serve /healthz (alive), /readyz (engine.ready() all true, Redis pings when configured) and /metrics in a
    thread of its own, for processes without a front door (`ragbot schedule`).

    `local` adds POST routes answered to loopback callers only. Port 0 binds a free port (see `.port`). Returns
    at once; the server runs in a daemon thread.
    """
    app = health_app(lambda: readiness(engine, kv, checks), local)
    server = ThreadedServer(app, host, port, what="/healthz, /readyz, /metrics")
    log.info("health server listening", extra={"event": "health_listening", "port": server.port})
    return HealthServer(server)
