"""Background services every bot process runs beside its chat connection."""

from __future__ import annotations

import contextlib
from typing import Any

from rag_core.settings import Settings


def start_services(engine: Any, kv: Any, settings: Settings) -> list[Any]:
    """/healthz, /readyz, /metrics, and with an embedded store the sync schedule (only one process may open it)."""
    from connectors.schedule import start_in_process
    from rag_core.feedback.http import serve_health

    handles: list[Any] = [serve_health(settings.http_port, engine, kv)]
    if settings.sources and not settings.qdrant_url:
        handles.append(start_in_process(engine, settings))
    return handles


def stop_service(handle: Any) -> None:
    """Stop a health server or scheduler, whichever method it has; shutdown errors are not worth a crash."""
    for method in ("stop", "shutdown", "close"):
        if callable(getattr(handle, method, None)):
            with contextlib.suppress(Exception):
                getattr(handle, method)()
            return
