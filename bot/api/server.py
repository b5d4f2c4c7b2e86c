"""Running the API: `serve()` for a process's event loop (`ragbot api`, `ragbot run`), `ApiServer` in a thread,
and `ragbot report --serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from bot.api.settings import load_tokens
from bot.runtime import Runtime, Service
from rag_core.errors import UserError
from rag_core.feedback.serving import listen, server
from rag_core.settings import Settings

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (TCP_NODELAY), bound here so a taken port is one clear line, not uvicorn's exit."""
    return listen(host, port, "the HTTP API")


def _server(app: ASGIApp) -> uvicorn.Server:
    return server(app)


async def serve(
    settings: Settings,
    engine: Any,
    kv: Any,
    feedback: Any = None,
    resync: Any = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Serve the HTTP API on the running event loop until cancelled (what `ragbot run` awaits beside the chat
    adapters when `RAG_API_TOKENS` is set). Raises UserError for bad tokens or a taken port."""
    from bot.api.app import build_context, create_app
    from bot.api.webhooks import confluence_webhooks

    tokens = load_tokens(settings)
    if not tokens:
        raise UserError("RAG_API_TOKENS is not set: give at least one token (docs/api.md)")
    ctx = build_context(settings, tokens, kv, engine, feedback, resync)
    sock = bind(host or settings.api_host, settings.api_port if port is None else port)
    log.info(
        "http api listening",
        extra={"event": "api_listening", "port": sock.getsockname()[1], "tokens": len(tokens)},
    )
    try:
        async with confluence_webhooks(settings) as hooks:  # closed when the API stops
            await _serve_socket(create_app(ctx, confluence_webhooks=hooks), sock)
    finally:
        sock.close()


class ApiServer:
    """An API app served by uvicorn in a daemon thread (tests, benchmarks, processes whose loop is not asyncio's
    own, such as Slack's Socket Mode). `.url` is where it listens; `.stop()` shuts it down."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"
        self._server = _server(app)
        self._thread = threading.Thread(target=self._run, name=f"api-http-{self.port}", daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.01)
        if not self._server.started:
            raise UserError(f"the HTTP API did not start on port {self.port}")

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()


def api_service(settings: Settings, *, host: str | None = None, port: int | None = None) -> Service:
    """The HTTP API as one of the process's services (`ragbot api`, and `ragbot run` when RAG_API_TOKENS is
    set), mounted on the process's front door; a missing or bad token list fails here, before the models
    load. `host`/`port` serve it on a port of its own instead (no front door)."""
    from bot.api.app import build_context, create_app
    from bot.api.webhooks import confluence_webhooks
    from bot.conversation import make_resync

    tokens = load_tokens(settings)
    if not tokens:
        raise UserError("RAG_API_TOKENS is not set: give at least one token (docs/api.md)")

    async def run(runtime: Runtime) -> None:
        resync = make_resync(runtime.engine, settings, runtime.kv)
        if runtime.front_door is None or host is not None or port is not None:
            await serve(settings, runtime.engine, runtime.kv, runtime.feedback, resync, host=host, port=port)
            return
        ctx = build_context(settings, tokens, runtime.kv, runtime.engine, runtime.feedback, resync)
        async with confluence_webhooks(settings) as hooks:  # closed when the service stops
            runtime.front_door.mount_api(create_app(ctx, limit_body=False, confluence_webhooks=hooks))
            log.info("http api mounted", extra={"event": "api_listening", "port": runtime.health_port})
            await asyncio.Event().wait()  # served by the front door until the process stops

    return Service("api", run)


def main(host: str | None = None, port: int | None = None) -> int:
    """`ragbot api`: the HTTP API on the front door (with the probes) and, on an embedded store, the sync
    schedule. `--host`/`--port` choose the front door's address."""
    from bot.runtime import run
    from bot.settings import get_bot_settings

    settings = get_bot_settings()
    changes: dict[str, Any] = {}
    if host is not None:
        changes["api_host"] = host
    if port is not None:
        changes["http_port"] = port
    if changes:
        settings = settings.model_copy(update=changes)
    return run(settings, [api_service(settings)])


def login_url(base_url: str, secret: str) -> str:
    return f"{base_url.rstrip('/')}/admin/login?token={secret}"


def report_serve(host: str | None = None, port: int | None = None) -> int:
    """`ragbot report --serve`: serve /admin/report (no models loaded) and print a one-time login link."""
    from bot.api.app import build_context, create_app
    from rag_core.feedback import FeedbackStore
    from rag_core.kv import make_kv
    from rag_core.logs import setup_logging
    from rag_core.settings import get_settings

    settings = get_settings()
    setup_logging(settings)
    kv = make_kv(settings.redis_url)
    with FeedbackStore.from_settings(settings) as feedback:
        ctx = build_context(settings, load_tokens(settings), kv, feedback=feedback)
        host = host or settings.api_host
        sock = bind(host, settings.api_port if port is None else port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        url = login_url(f"http://{shown}:{sock.getsockname()[1]}", ctx.sessions.new_login())
        print(
            f"Report: open this one-time login link (valid {settings.api_login_ttl_s // 60} min):\n  {url}",
            flush=True,
        )
        try:
            asyncio.run(_serve_socket(create_app(ctx), sock))
        finally:
            sock.close()
    return 0


async def _serve_socket(app: ASGIApp, sock: socket.socket) -> None:
    await _server(app).serve(sockets=[sock])
