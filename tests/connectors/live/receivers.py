"""Helpers for tests of the services that receive change hints (connectors/live_events.py): Redis held on
writes, a front door that says when a service mounted its app, the runtime a service runs in, and the check that
a stopped service ends its receiver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import redis

from bot.conversation import Conversation
from bot.front_door import FrontDoor, Part
from bot.runtime import Runtime
from bot.settings import BotSettings
from connectors.live_events import EventLog
from rag_core.feedback import FeedbackStore
from rag_core.kv import KeyValue


class HeldLog(EventLog):
    """Redis hanging on XADD until the test releases it (the epoch's calls still answer); past `hold_s` the
    write fails, so a broken test ends instead of leaving a thread waiting."""

    def __init__(self, redis_url: str, receiver: str, hold_s: float) -> None:
        super().__init__(redis_url, receiver)
        self.hold_s = hold_s
        self.entered = threading.Event()
        self.release = threading.Event()

    def add(self, hints: Iterable[str]) -> None:
        self.entered.set()
        if not self.release.wait(self.hold_s):
            raise redis.TimeoutError("held past the test's guard")
        super().add(hints)


async def assert_stopping_ends_the_receiver(task: asyncio.Task[None], log: EventLog) -> None:
    """The service running as `task` keeps its receiver alive; cancelled (SIGTERM), its epoch ends at once."""
    assert log.read(None).position is not None  # its receiver is alive
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    pending = log.read(None)
    assert pending.position is None and "no event receiver" in pending.why


class MountedDoor(FrontDoor):
    """The process's front door, telling the test when a service (the API, or Slack in HTTP mode) mounted."""

    def __init__(self, settings: BotSettings) -> None:
        super().__init__(settings)
        self.mounted = asyncio.Event()
        self.api: Part | None = None

    def mount_api(self, app: Part) -> None:
        super().mount_api(app)
        self.api = app
        self.mounted.set()

    def mount_slack(self, app: Part) -> None:
        super().mount_slack(app)
        self.mounted.set()


def service_runtime(
    settings: BotSettings, engine: Any, kv: KeyValue, feedback: FeedbackStore, door: FrontDoor | None
) -> Runtime:
    """What `ragbot run` hands its services, over the given engine and stores."""
    return Runtime(
        settings, engine, kv, feedback, Conversation(engine, settings, kv, feedback), front_door=door
    )
