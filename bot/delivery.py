"""Trying a reply's routes in order (the post, plain text, an ephemeral message, a DM) for either chat adapter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bot.conversation import Undelivered

log = logging.getLogger(__name__)

T = TypeVar("T")


async def try_routes(
    platform: str,
    routes: Sequence[tuple[str, Callable[[], Awaitable[T]]]],
    *,
    failures: tuple[type[BaseException], ...],
    describe: Callable[[BaseException], str],
    channel: str | None = None,
) -> tuple[str, T]:
    """The first (name, route) that works and what it returned. Each failure (one of `failures`) is one log
    line; when none works, Undelivered names every route's error."""
    errors: list[str] = []
    for name, route in routes:
        try:
            result = await route()
        except failures as exc:
            log.warning(
                f"{platform} delivery route failed",
                extra={
                    "event": f"{platform}_delivery_failed",
                    "route": name,
                    "channel": channel,
                    "error": describe(exc),
                },
            )
            errors.append(f"{name}: {describe(exc)}")
            continue
        if errors:
            log.warning(
                f"{platform} reply delivered by a fallback route",
                extra={"event": f"{platform}_delivery_fallback", "route": name, "failed": errors},
            )
        return name, result
    raise Undelivered("; ".join(errors))
