"""Issue 23, item 13: a service that fails is restarted with backoff and logged; its siblings keep running."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot import runtime as runtime_mod
from bot import supervise
from bot.discord import app as discord_app
from bot.runtime import Service
from bot.settings import BotSettings
from rag_core.errors import UserError


async def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    waits: list[float] = []
    now = [0.0]
    runs = [1.0, 1.0, 1.0, 1.0, 1.0, 500.0, 1.0]  # how long each attempt lasts before it fails

    async def flaky(_: Any) -> None:
        now[0] += runs.pop(0)
        if not runs:
            raise UserError("stop the test")
        raise RuntimeError("boom")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    service = supervise.supervised(
        Service("flaky", flaky),
        first_delay_s=1,
        max_delay_s=8,
        stable_s=300,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(UserError):
        await service.run(SimpleNamespace())
    assert waits == [1, 2, 4, 8, 8, 1]


async def test_a_discord_client_that_raises_is_restarted_and_never_ends_its_siblings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed gateway event (MESSAGE_CREATE without `content`) makes discord.py's `Client.start` raise a
    KeyError: that adapter alone restarts, and the API beside it keeps serving."""
    monkeypatch.setattr(supervise, "FIRST_DELAY_S", 0.0)
    starts: list[int] = []
    restarted = asyncio.Event()

    class ExplodingClient(discord.Client):
        async def start(self, token: str, *, reconnect: bool = True) -> None:
            starts.append(1)
            if len(starts) == 1:
                raise KeyError("content")  # what discord.py's parse_message_create raises
            restarted.set()
            await asyncio.Event().wait()

    monkeypatch.setattr(
        discord_app,
        "build_client",
        lambda settings, conversation: ExplodingClient(intents=discord.Intents.none()),
    )
    sibling_ran: list[str] = []

    async def api(_: Any) -> None:
        sibling_ran.append("started")
        await restarted.wait()  # still running when Discord comes back
        sibling_ran.append("saw the restart")
        raise UserError("end of test")  # a UserError still ends the process, as a rejected token must

    settings = BotSettings(_env_file=None, data_dir=tmp_path, discord_token="t")
    runtime = SimpleNamespace(conversation=None, front_door=None, front_door_socket=None)
    with caplog.at_level(logging.ERROR), pytest.raises(UserError, match="end of test"):
        await asyncio.wait_for(
            runtime_mod.serve(runtime, [discord_app.discord_service(settings), Service("api", api)]),  # type: ignore[arg-type]
            timeout=60,
        )
    assert len(starts) == 2 and sibling_ran == ["started", "saw the restart"]
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "service_restart"]
    assert line.service == "discord" and "KeyError" in line.getMessage() and line.exc_info
