"""Events the Slack adapter receives become change hints for a Slack threads source (connectors/live_events.py):
every verified envelope Bolt passes on (not the bot's own, which threads leave out by default); a forged one is
refused before it is recorded. Writing the hints never delays an ack or an answer."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
import redis

import connectors.slack_threads.events as slack_events
from bot.runtime import Service
from bot.slack.app import http_service, socket_service
from connectors.live_events import EventLog
from connectors.slack_threads.events import RECEIVER
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.kv import make_kv
from rag_core.settings import SourceConfig
from tests.bot.slack.conftest import bot_settings, make_bot
from tests.bot.slack.fake_slack import BOT_USER_ID, FakeSlack, channel_message, event_callback, mention
from tests.bot.slack.test_mentions import final_update
from tests.connectors.live.receivers import MountedDoor, assert_stopping_ends_the_receiver, service_runtime

GUARD_S = 30.0  # fails a test that would otherwise hang (the fixed code never comes near it)


def threads_sources(tmp_path: Path, redis_url: str) -> list[SourceConfig]:
    return [
        *bot_settings(tmp_path, redis_url).sources,
        SourceConfig(name="threads", kind="slack_threads", channels=["C1"], token_env="TEST_SLACK_TOKEN"),
    ]


class HeldWrites:
    """An event log whose hint writes wait until the test releases them: Redis hanging on XADD."""

    def __init__(self) -> None:
        self.entered = threading.Event()  # a write is waiting
        self.release = threading.Event()

    def log_class(self) -> type[EventLog]:
        held = self

        class HeldLog(EventLog):
            def add(self, hints: Iterable[str]) -> None:
                held.entered.set()
                if not held.release.wait(GUARD_S):
                    raise redis.TimeoutError("held past the test's guard")
                super().add(hints)

        return HeldLog


async def test_verified_events_reach_the_slack_threads_sources_event_log(
    small_engine: Engine, tmp_path: Path, clean_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    sources = threads_sources(tmp_path, clean_redis)
    log = EventLog(clean_redis, RECEIVER)
    async with make_bot(small_engine, tmp_path, clean_redis, sources=sources) as bot:
        position = log.read(None).position  # the receiver the adapter started is alive
        edited = {
            "type": "message",
            "subtype": "message_changed",
            "channel": "C1",
            "message": {"ts": "1700000000.000200", "thread_ts": "1700000000.000100", "text": "new words"},
        }
        own = {"type": "message", "channel": "C1", "user": BOT_USER_ID, "bot_id": "B1", "ts": "1700000001.0"}
        renamed = {"type": "channel_rename", "channel": {"id": "C1", "name": "help-desk", "created": 1}}
        with caplog.at_level(logging.INFO):
            for event in (edited, own, renamed):
                response, _ = await bot.post_event(event_callback(event))
                assert response.status_code == 200
        assert not [r for r in caplog.records if "nhandled" in r.getMessage()]  # a listener takes the rename
        forged = json.dumps(event_callback({**edited, "channel": "C9"}))
        response = await bot.http.post(
            "/slack/events",
            content=forged,
            headers={"Content-Type": "application/json", **bot.signed_headers(forged.replace("C9", "C1"))},
        )
        assert response.status_code == 401
        assert bot.recorder is not None and await asyncio.to_thread(bot.recorder.flush, GUARD_S)
        pending = log.read(position)
    # not the forged, not the bot's own
    assert pending.complete and pending.hints == ["C1:1700000000.000100", "C1"]
    log.close()


async def test_without_a_slack_threads_source_nothing_is_recorded(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    log = EventLog(clean_redis, RECEIVER)
    async with make_bot(small_engine, tmp_path, clean_redis) as bot:
        response, _ = await bot.post_event(
            event_callback({"type": "message", "channel": "C1", "user": "U1", "ts": "1700000002.0"})
        )
        assert response.status_code == 200
    pending = log.read(None)
    assert pending.position is None and "no event receiver" in pending.why  # none was started
    log.close()


async def test_a_hanging_event_log_write_delays_no_ack_and_no_answer(
    small_engine: Engine, tmp_path: Path, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis hangs on the first hint's write: every event is still acked, a mention still answered, and once
    Redis answers again every hint lands, in the order the events came."""
    held = HeldWrites()
    monkeypatch.setattr(slack_events, "EventLog", held.log_class())
    log = EventLog(clean_redis, RECEIVER)
    messages = [
        f"1700000000.{i:06d}" for i in range(1, 10)
    ]  # more events than the default thread pool's workers
    try:
        async with make_bot(
            small_engine, tmp_path, clean_redis, sources=threads_sources(tmp_path, clean_redis)
        ) as bot:
            position = log.read(None).position
            for i, ts in enumerate(messages):
                event = event_callback(channel_message(f"message {i}", channel="C1", ts=ts))
                response, _ = await asyncio.wait_for(bot.post_event(event), GUARD_S)
                assert response.status_code == 200
                if i == 0:  # the first hint's write now hangs
                    assert await asyncio.to_thread(held.entered.wait, GUARD_S)
            question = "1700000001.000100"
            for event in (
                mention("How do I deploy to production?", channel="C1", ts=question),
                channel_message(
                    f"<@{BOT_USER_ID}> How do I deploy to production?", channel="C1", ts=question
                ),
            ):  # Slack sends a mention twice: app_mention, and the message itself (message.channels)
                response, _ = await asyncio.wait_for(bot.post_event(event_callback(event)), GUARD_S)
                assert response.status_code == 200
            [final] = await bot.fake.wait_for(final_update(bot, "C1"))
            assert "Deploying to production" in json.dumps(final.params["blocks"])
            assert not held.release.is_set()  # all of that while the write still hangs
            held.release.set()
            assert bot.recorder is not None and await asyncio.to_thread(bot.recorder.flush, GUARD_S)
            pending = log.read(position)
    finally:
        held.release.set()  # a failing run must not leave a thread waiting
        log.close()
    assert pending.complete and pending.hints == [f"C1:{ts}" for ts in [*messages, question]]


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_stopped_slack_service_ends_its_receivers_epoch(
    small_engine: Engine, tmp_path: Path, clean_redis: str, mode: str
) -> None:
    """The service's recorder is closed when the service stops (SIGTERM cancels it): the receiver's alive key
    goes at once, instead of a poll trusting the log for up to three minutes after the bot is gone."""
    fake = await FakeSlack().start()
    settings = bot_settings(
        tmp_path,
        clean_redis,
        sources=threads_sources(tmp_path, clean_redis),
        slack_app_token="xapp-test",
        slack_api_url=fake.api_url,
    )
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    kv = make_kv(clean_redis)
    door = MountedDoor(settings)
    runtime = service_runtime(settings, small_engine, kv, feedback, door)
    service: Service = http_service(settings) if mode == "http" else socket_service(settings)
    log = EventLog(clean_redis, RECEIVER)
    task = asyncio.create_task(service.run(runtime))
    try:
        if mode == "http":
            await asyncio.wait_for(door.mounted.wait(), GUARD_S)
        else:
            await fake.wait_connected(GUARD_S)
        await assert_stopping_ends_the_receiver(task, log)
    finally:
        task.cancel()
        await fake.stop()
        feedback.close()
        log.close()
