"""One chat process: the engine, the conversation and the services beside it, with adapters on one event loop.

`ragbot slack`, `ragbot discord` and `ragbot run` all come through here: `open_runtime` builds what every bot
process shares (engine, key-value store, query log, conversation, health server, and the sync schedule where this
process should run it), and `serve` runs the adapters as asyncio tasks until SIGTERM/SIGINT or a UserError; an
adapter that fails otherwise is restarted with backoff (bot/supervise.py), never ending its siblings. The process's
one HTTP port (`bot/front_door.py`: probes, Slack HTTP mode, the API) is bound in `open_runtime` and served on the
same loop as the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import BotSettings

if TYPE_CHECKING:
    import socket

    from bot.conversation import Conversation
    from bot.front_door import FrontDoor
    from rag_core.engine import Engine
    from rag_core.feedback import FeedbackStore
    from rag_core.kv import KeyValue

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the adapters of one process share."""

    settings: BotSettings
    engine: Engine
    kv: KeyValue
    feedback: FeedbackStore
    conversation: Conversation
    handles: list[Any] = field(default_factory=list)  # health server, scheduler: stopped in reverse order
    health_port: int | None = None  # the front door's port
    front_door: FrontDoor | None = None  # services mount their HTTP parts here (Slack HTTP mode, the API)
    front_door_socket: socket.socket | None = None

    def close(self) -> None:
        for handle in reversed(self.handles):
            stop_service(handle)
        if self.front_door_socket is not None:
            self.front_door_socket.close()
        with contextlib.suppress(FileNotFoundError):
            run_file(self.settings).unlink()
        self.feedback.close()
        self.engine.close()


@dataclass(frozen=True)
class Service:
    """A long-running part of the process (an adapter, an API server): `run` returns only when it stops."""

    name: str
    run: Callable[[Runtime], Coroutine[Any, Any, None]]


def run_file(settings: BotSettings) -> Path:
    """pid and health port of this process, for `ragbot ask` in a terminal (bot/local.py)."""
    from bot.local import RUN_FILE

    return settings.data_dir / RUN_FILE


def open_runtime(settings: BotSettings, *, schedule: bool | None = None) -> Runtime:
    """Load the engine and start the health server; the schedule runs here when `schedule` is true, or (None)
    when the store is embedded, since only one process may open it."""
    from bot.conversation import Conversation, make_resync
    from bot.front_door import FrontDoor, front_door_port
    from connectors.schedule import start_in_process
    from rag_core.engine import Engine
    from rag_core.feedback import FeedbackStore
    from rag_core.feedback.doc_votes import StoredDocSignals
    from rag_core.feedback.serving import listen
    from rag_core.kv import make_kv

    engine = Engine.from_settings(settings)
    kv = make_kv(settings.redis_url)
    feedback = FeedbackStore.from_settings(settings)
    engine.doc_signals = StoredDocSignals(
        feedback, settings
    )  # votes boost documents; hidden ones are never cited
    conversation = Conversation(engine, settings, kv, feedback, make_resync(engine, settings, kv))
    runtime = Runtime(settings, engine, kv, feedback, conversation)
    try:
        from bot.local import local_routes

        token = secrets.token_urlsafe(
            32
        )  # the terminal reads it from the run file; loopback alone is not enough
        runtime.front_door = FrontDoor(settings, engine, kv, local=local_routes(engine, token))
        sock = listen(settings.api_host, front_door_port(settings), "the HTTP front door")
        runtime.front_door_socket = sock
        runtime.health_port = sock.getsockname()[1]
        _write_run_file(settings, runtime.health_port, token)
        if schedule is None:
            schedule = not settings.qdrant_url
        if schedule and settings.sources:
            runtime.handles.append(start_in_process(engine, settings))
    except BaseException:
        runtime.close()
        raise
    return runtime


def _write_run_file(settings: BotSettings, port: int, token: str) -> None:
    """Tells `ragbot ask` in a terminal where to ask while this process holds the embedded index, and with
    which token; readable by this process's user only."""
    path = run_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"pid": os.getpid(), "http_port": port, "local_token": token}))
    tmp.replace(path)


def stop_service(handle: Any) -> None:
    """Stop a health server or scheduler, whichever method it has; a failed stop is logged, not raised."""
    for method in ("stop", "shutdown", "close"):
        if callable(getattr(handle, method, None)):
            try:
                getattr(handle, method)()
            except Exception:
                log.warning(
                    "stopping a service failed", exc_info=True, extra={"event": "service_stop_failed"}
                )
            return


def run(settings: BotSettings, services: list[Service], *, schedule: bool | None = None) -> int:
    """Open the runtime, run `services` until a signal or until one of them ends, then close everything."""
    from rag_core.logs import setup_logging

    setup_logging(settings)
    runtime = open_runtime(settings, schedule=schedule)
    log.info(
        "bot process started",
        extra={
            "event": "bot_start",
            "services": [s.name for s in services],
            "schedule": len(runtime.handles) > 1,
            "health_port": runtime.health_port,
        },
    )
    try:
        asyncio.run(serve(runtime, services))
    finally:
        runtime.close()
    return 0


async def serve(runtime: Runtime, services: list[Service]) -> None:
    """Run the services side by side, each restarted when it fails (bot.supervise); SIGTERM/SIGINT stop them
    all, and so does a UserError (e.g. a rejected token) from any of them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    if runtime.front_door is not None and runtime.front_door_socket is not None:
        services = [*services, front_door_service(runtime.front_door, runtime.front_door_socket)]
    from bot.supervise import supervised  # a failing service is restarted with backoff, never ending the rest

    tasks: dict[asyncio.Task[None], Service] = {
        asyncio.create_task(supervised(s).run(runtime), name=s.name): s for s in services
    }
    stopper = asyncio.create_task(stop.wait(), name="signal")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in [*tasks, stopper]:
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for task in done:
        if task is stopper or task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            raise error  # a UserError (e.g. a rejected token) reaches the CLI as one line
        log.warning(
            "service stopped by itself", extra={"event": "service_stopped", "service": task.get_name()}
        )


def front_door_service(door: FrontDoor, sock: socket.socket) -> Service:
    """The front door served on the process's loop, on the socket `open_runtime` bound."""

    async def run(runtime: Runtime) -> None:
        from rag_core.feedback.serving import serve as serve_asgi

        log.info(
            "http front door listening",
            extra={"event": "front_door_listening", "port": sock.getsockname()[1], "parts": door.parts},
        )
        await serve_asgi(door.app, sock)

    return Service("front-door", run)
