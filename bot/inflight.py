"""How many answers a process generates at once: one pool of slots shared by Slack, Discord and the API.

Every `Conversation` over the same engine shares the pool (`slots_for`), so the chat adapters and the HTTP API
take turns in one count. A platform may use every free slot while no other platform waits; once another does,
it gets slots back as they free up until the flooding platform is under `PLATFORM_SHARE` of them. A question
finding no slot waits its turn (first come, first served among those whose platform may take one); past
`answers_queued` waiting it is refused at once with a clear reply. `/sources` and votes take no slot.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import Counter
from typing import Any

from rag_core.feedback import metrics

PLATFORM_SHARE = 0.75  # largest share of the slots one platform may hold


class AnswerSlots:
    """A counted pool of answer slots with a bounded waiting line; safe across threads and event loops."""

    def __init__(self, limit: int, queued: int = 0) -> None:
        self.limit = max(1, limit)
        self.queued = max(0, queued)
        self._held: Counter[str] = Counter()
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return sum(self._held.values())

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def per_platform_limit(self) -> int:
        return max(1, int(self.limit * PLATFORM_SHARE)) if self.limit > 1 else 1

    def _may_take(self, platform: str) -> bool:
        """A free slot, and `platform` under its share or no other platform waiting. Caller holds the lock."""
        if self.in_flight >= self.limit:
            return False
        if self._held[platform] < self.per_platform_limit():
            return True
        return not any(waiting != platform for waiting, _ in self._waiting)

    def _take(self, platform: str) -> None:
        self._held[platform] += 1
        metrics.set_answers_in_flight(self.in_flight)

    async def enter(self, platform: str) -> bool:
        """Take a slot for an answer on `platform`, waiting for one when all are held; False (at once) when the
        waiting line is full too."""
        with self._lock:
            queued_ahead = any(waiting == platform for waiting, _ in self._waiting)
            if not queued_ahead and self._may_take(platform):
                self._take(platform)
                return True
            if len(self._waiting) >= self.queued:
                return False
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((platform, turn))
        try:
            await turn
        except asyncio.CancelledError:
            with self._lock:
                still_waiting = (platform, turn) in self._waiting
                if still_waiting:
                    self._waiting.remove((platform, turn))
            if not still_waiting:
                self.leave(platform)  # the slot was granted as the wait was cancelled: give it back
            raise
        return True

    def leave(self, platform: str) -> None:
        """Give a slot back and hand free slots to the earliest waiters whose platform may take one."""
        with self._lock:
            self._held[platform] -= 1
            if self._held[platform] <= 0:
                del self._held[platform]
            granted = []
            for waiter in list(self._waiting):
                if self._may_take(waiter[0]):
                    self._waiting.remove(waiter)
                    self._take(waiter[0])
                    granted.append(waiter)
            metrics.set_answers_in_flight(self.in_flight)
        for waiting_platform, turn in granted:
            try:
                turn.get_loop().call_soon_threadsafe(_grant, turn)
            except RuntimeError:  # its event loop is gone (a server stopped): nobody takes the slot
                self.leave(waiting_platform)


def _grant(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


_POOLS: weakref.WeakKeyDictionary[Any, AnswerSlots] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def slots_for(engine: Any, limit: int, queued: int) -> AnswerSlots:
    """The slot pool of everything answering with `engine` (sized by the first caller)."""
    with _POOLS_LOCK:
        try:
            pool = _POOLS.get(engine)
        except TypeError:  # an engine double that cannot be weakly referenced: its own pool
            return AnswerSlots(limit, queued)
        if pool is None:
            pool = AnswerSlots(limit, queued)
            _POOLS[engine] = pool
        return pool


def busy_message(slots: AnswerSlots) -> str:
    return (
        f"I'm answering {slots.in_flight} questions right now and {slots.waiting} more are waiting, as many as "
        "I can take. Please ask again in a minute."
    )
