"""How many answers a process generates at once: one pool of slots shared by Slack, Discord and the API.

Every `Conversation` over the same engine shares the pool (`slots_for`), so the chat adapters and the HTTP API
take turns in one count. No platform may hold more than `PLATFORM_SHARE` of the slots, so one flooded platform
leaves room for the others. A question finding no slot is refused at once with a clear reply, never queued
behind minutes of answers; `/sources` and votes take no slot.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any

from rag_core.feedback import metrics

PLATFORM_SHARE = 0.75  # largest share of the slots one platform may hold


class AnswerSlots:
    """A counted pool of answer slots; `enter(platform)` takes one (False when full), `leave` gives it back."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return sum(self._held.values())

    def per_platform_limit(self) -> int:
        return max(1, int(self.limit * PLATFORM_SHARE)) if self.limit > 1 else 1

    def enter(self, platform: str) -> bool:
        """Take a slot for an answer on `platform`; False when the process or the platform's share is full."""
        with self._lock:
            if self.in_flight >= self.limit or self._held[platform] >= self.per_platform_limit():
                return False
            self._held[platform] += 1
            metrics.set_answers_in_flight(self.in_flight)
            return True

    def leave(self, platform: str) -> None:
        with self._lock:
            self._held[platform] -= 1
            if self._held[platform] <= 0:
                del self._held[platform]
            metrics.set_answers_in_flight(self.in_flight)


_POOLS: weakref.WeakKeyDictionary[Any, AnswerSlots] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def slots_for(engine: Any, limit: int) -> AnswerSlots:
    """The slot pool of everything answering with `engine` (made with `limit` by the first caller)."""
    with _POOLS_LOCK:
        try:
            pool = _POOLS.get(engine)
        except TypeError:  # an engine double that cannot be weakly referenced: its own pool
            return AnswerSlots(limit)
        if pool is None:
            pool = AnswerSlots(limit)
            _POOLS[engine] = pool
        return pool


def busy_message(slots: AnswerSlots) -> str:
    return (
        f"I'm answering {slots.in_flight} questions right now, as many as I can at once. "
        "Please ask again in a minute."
    )
