"""Keep each service of a process running: one that fails (or stops by itself) is logged and restarted with
backoff, never taking its siblings down. A `UserError` (a rejected token, a taken port) still ends the process:
restarting would fail the same way, and the operator must read that one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rag_core.errors import UserError

if TYPE_CHECKING:  # bot.runtime imports this module when it serves
    from bot.runtime import Runtime, Service

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0  # wait before the first restart; doubles per failure in a row
MAX_DELAY_S = 60.0  # the longest wait between restarts
STABLE_S = 300.0  # a service that ran this long before failing starts again from FIRST_DELAY_S


def supervised(
    service: Service,
    *,
    first_delay_s: float | None = None,
    max_delay_s: float | None = None,
    stable_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Service:
    """The same service, restarted with exponential backoff whenever it fails or returns (delays default to
    this module's constants, read when the service starts)."""

    async def run(runtime: Runtime) -> None:
        first = FIRST_DELAY_S if first_delay_s is None else first_delay_s
        longest = MAX_DELAY_S if max_delay_s is None else max_delay_s
        stable = STABLE_S if stable_s is None else stable_s
        delay = first
        restarts = 0
        while True:
            started = clock()
            try:
                await service.run(runtime)
                problem, exc_info = "stopped by itself", None
            except (asyncio.CancelledError, UserError):
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of one service: log it, restart it
                problem, exc_info = f"failed: {type(exc).__name__}", exc
            if clock() - started >= stable:
                delay = first
            restarts += 1
            log.error(
                f"service {service.name} {problem}; restarting in {delay:g} s",
                exc_info=exc_info,
                extra={
                    "event": "service_restart",
                    "service": service.name,
                    "restarts": restarts,
                    "delay_s": delay,
                },
            )
            await sleep(delay)
            delay = min(delay * 2, longest)

    return dataclasses.replace(service, run=run)
