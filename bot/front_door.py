"""The one HTTP front door of a bot process: every route on one port (`RAG_HTTP_PORT`).

    /healthz, /readyz, /metrics     always (probes and Prometheus)
    /local/ask, /local/sources      always, loopback callers only (`ragbot ask` in a terminal)
    /slack/events                   Slack HTTP mode (events, commands, interactivity), when it runs
    /v1/…, /admin/…, /docs          the HTTP API and the admin report, when RAG_API_TOKENS is set

Parts are mounted by the services that own them (`mount_slack`, `mount_api`) before or while the door serves.
One middleware in front of all of them caps request bodies (per part) and logs one line per request (no query
strings, no bodies). The socket comes from `rag_core.feedback.serving.listen` (TCP_NODELAY on every connection).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.api.limits import BodyLimit
from rag_core.feedback.http import LocalRoute, health_app, readiness
from rag_core.settings import Settings

log = logging.getLogger(__name__)

Part = Callable[[Any, Any, Any], Awaitable[None]]  # an ASGI app, however it spells its argument types
PROBES = ("/healthz", "/readyz", "/metrics")
OLD_PORTS = {"api_port": "RAG_API_PORT", "slack_http_port": "RAG_SLACK_HTTP_PORT"}


def front_door_port(settings: Settings) -> int:
    """`RAG_HTTP_PORT`; for this release an explicitly set RAG_API_PORT / RAG_SLACK_HTTP_PORT still chooses the
    port when RAG_HTTP_PORT is not set (one warning line says so)."""
    explicit = settings.model_fields_set
    defaults = type(settings).model_fields
    old = [
        (name, env)
        for name, env in OLD_PORTS.items()
        if name in explicit
        and getattr(settings, name) != defaults[name].default  # .env.example's values pass
    ]
    if not old:
        return settings.http_port
    names = " and ".join(env for _, env in old)
    if "http_port" in explicit:
        port = settings.http_port
        note = f"{names} ignored: everything is served on RAG_HTTP_PORT={port}"
    else:
        port = int(getattr(settings, old[0][0]))
        note = f"{names} is deprecated (one port serves everything now); serving on {port}; set RAG_HTTP_PORT"
    log.warning(note, extra={"event": "deprecated_port_setting", "port": port})
    return port


class FrontDoor:
    """The ASGI app of the process: routes by path to the probes, Slack, or the API (each when mounted)."""

    def __init__(
        self,
        settings: Settings,
        engine: Any = None,
        kv: Any = None,
        local: Mapping[str, LocalRoute] | None = None,
    ) -> None:
        self.settings = settings
        self.local_paths = tuple(local or {})
        self._probes: ASGIApp = health_app(lambda: readiness(engine, kv), local)
        self._slack: Part | None = None
        self._api: Part | None = None
        max_slack = int(getattr(settings, "slack_max_body_bytes", 1024 * 1024))
        self.app: ASGIApp = RequestGate(self._route, settings.api_max_body_bytes, {"/slack/": max_slack})

    def mount_slack(self, app: Part) -> None:
        """Serve Slack HTTP mode's requests (/slack/…) from now on."""
        self._slack = app

    def mount_api(self, app: Part) -> None:
        """Serve the HTTP API and the admin report (every path that is no probe and not Slack's)."""
        self._api = app

    @property
    def parts(self) -> list[str]:
        return ["probes"] + (["slack"] if self._slack else []) + (["api"] if self._api else [])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return  # no lifespan: the runtime opens and closes what the parts use
        path: str = scope.get("path", "")
        if path in PROBES or path in self.local_paths:
            await self._probes(scope, receive, send)
        elif path.startswith("/slack/") and self._slack is not None:
            await self._slack(scope, receive, send)
        elif self._api is not None:
            await self._api(scope, receive, send)
        else:
            await self._probes(scope, receive, send)  # its 404 names what is served


class RequestGate:
    """The front door's one middleware: the body cap of the part a path goes to, then one log line per request
    (method, path, status, ms; probes and successes at DEBUG, refusals and errors at INFO)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, by_prefix: Mapping[str, int]) -> None:
        self.app = app
        self._default = BodyLimit(app, max_body_bytes)
        self._by_prefix = [(prefix, BodyLimit(app, limit)) for prefix, limit in by_prefix.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        capped = next((app for prefix, app in self._by_prefix if path.startswith(prefix)), self._default)
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await capped(scope, receive, send_status)
        finally:
            level = logging.DEBUG if status and status < 400 else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "http request",
                    extra={
                        "event": "http_request",
                        "method": scope.get("method"),
                        "path": path,  # never the query string: login links carry secrets there
                        "status": status or None,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
