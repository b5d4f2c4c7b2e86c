"""Events the Slack adapter receives become change hints for a Slack threads source (connectors/live_events.py):
every verified envelope Bolt passes on (not the bot's own, which threads leave out by default); a forged one is
refused before it is recorded."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.live_events import EventLog
from connectors.slack_threads.events import RECEIVER
from rag_core.engine import Engine
from rag_core.settings import SourceConfig
from tests.bot.slack.conftest import bot_settings, make_bot
from tests.bot.slack.fake_slack import BOT_USER_ID, event_callback


async def test_verified_events_reach_the_slack_threads_sources_event_log(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    sources = [
        *bot_settings(tmp_path, clean_redis).sources,
        SourceConfig(name="threads", kind="slack_threads", channels=["C1"], token_env="TEST_SLACK_TOKEN"),
    ]
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
        for event in (edited, own):
            response, _ = await bot.post_event(event_callback(event))
            assert response.status_code == 200
        forged = json.dumps(event_callback({**edited, "channel": "C9"}))
        response = await bot.http.post(
            "/slack/events",
            content=forged,
            headers={"Content-Type": "application/json", **bot.signed_headers(forged.replace("C9", "C1"))},
        )
        assert response.status_code == 401
        pending = log.read(position)
    assert pending.complete and pending.hints == ["C1:1700000000.000100"]  # not the forged, not the bot's own
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
