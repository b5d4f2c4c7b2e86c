"""Delivery never goes silent: every injected Slack Web API fault still reaches the asker, or is logged as
`undelivered`; 👀 always comes off; a no-LLM answer makes the fewest Web API calls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag_core.feedback.models import AnswerRecord
from tests.bot.slack.conftest import SlackBot, make_bot
from tests.bot.slack.fake_slack import Call, event_callback, mention, slash

QUESTION = "How do I deploy to production?"
ANSWER_WORDS = "make deploy ENV=prod"  # in the answer (no LLM: quoted passages) and its sources

# (method, fault) pairs named in issue 10: HTTP 503, 429 with Retry-After, and `ok: false` errors.
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("chat.postMessage", {"status": 503}),
    ("chat.postMessage", {"status": 429, "retry_after": 1, "times": 3}),
    ("chat.postMessage", {"error": "restricted_action"}),
    ("chat.postMessage", {"error": "not_in_channel"}),
    ("chat.postMessage", {"error": "channel_not_found"}),
    ("chat.postMessage", {"error": "invalid_blocks"}),
    ("chat.update", {"status": 503}),
    ("chat.update", {"status": 429, "retry_after": 1, "times": 3}),
    ("chat.update", {"error": "restricted_action"}),
    ("chat.update", {"error": "message_not_found"}),
    ("chat.update", {"error": "invalid_blocks"}),
]


def shows_answer(call: Call) -> bool:
    text = str(call.params.get("text", "")) + str(call.params.get("blocks", ""))
    return ANSWER_WORDS in text


async def ask(bot: SlackBot, ts: str, channel: str = "C1") -> None:
    resp, _ = await bot.post_event(event_callback(mention(QUESTION, ts=ts, channel=channel)))
    assert resp.status_code == 200


def only_answer(bot: SlackBot) -> AnswerRecord | None:
    """The single query-log row, once it is written."""
    with Session(bot.feedback.engine) as session:
        rows = session.scalars(select(AnswerRecord)).all()
    return bot.feedback.get_answer(rows[0].id) if len(rows) == 1 else None


@pytest.mark.parametrize(
    ("method", "fault"), FAULTS, ids=[f"{m}-{f.get('error') or f['status']}" for m, f in FAULTS]
)
async def test_every_injected_fault_still_reaches_the_asker_and_removes_the_eyes(
    bot: SlackBot, method: str, fault: dict[str, Any]
) -> None:
    bot.fake.inject(method, **fault)
    ts = "900.000100"
    await ask(bot, ts)
    await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove", timestamp=ts), timeout=30)
    delivered = [c for c in bot.fake.delivered() if shows_answer(c)]
    assert delivered, [(c.method, c.fault) for c in bot.fake.calls]
    record = await bot.fake.wait_for(lambda: only_answer(bot))
    assert record.outcome == "answered"
    if fault.get("retry_after"):
        # Retry-After was honoured: the retries of the failing method waited at least that long.
        failing = [c for c in bot.fake.calls_to(method) if c.fault]
        assert len(failing) == 3
        assert all(b.at - a.at >= 0.9 for a, b in zip(failing, failing[1:], strict=False))


async def test_channel_refusing_every_post_falls_back_to_an_ephemeral_message(bot: SlackBot) -> None:
    bot.fake.inject("chat.postMessage", error="not_in_channel", channel="C1")
    await ask(bot, "901.000100")
    [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
    assert ephemeral.params["user"] == "U1" and ephemeral.params["channel"] == "C1"
    assert shows_answer(ephemeral) and "blocks" not in ephemeral.params
    await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove"))


async def test_when_ephemerals_fail_too_the_answer_goes_to_a_direct_message(bot: SlackBot) -> None:
    bot.fake.inject("chat.postMessage", error="channel_not_found", channel="C1")
    bot.fake.inject("chat.postEphemeral", error="channel_not_found")
    await ask(bot, "902.000100")
    [dm] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel="U1"))
    assert dm.fault is None and shows_answer(dm)
    await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove"))


async def test_nothing_delivered_is_logged_as_undelivered_with_the_error(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
        bot.fake.inject(method, error="restricted_action")
    ts = "903.000100"
    with caplog.at_level(logging.INFO):
        await ask(bot, ts)
        await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove", timestamp=ts))
        record = await bot.fake.wait_for(lambda: only_answer(bot))
    assert record.outcome == "undelivered"
    assert "restricted_action" in (record.error or "")
    assert ANSWER_WORDS in record.answer_text  # what would have been said is kept
    assert not bot.fake.delivered()
    assert any(getattr(r, "event", None) == "answer_undelivered" for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("slack_bolt"))


async def test_a_failing_reaction_never_stops_the_answer(bot: SlackBot) -> None:
    bot.fake.inject("reactions.add", status=503)
    await ask(bot, "904.000100")
    await bot.fake.wait_for(lambda: [c for c in bot.fake.delivered() if shows_answer(c)])


async def test_a_no_llm_answer_makes_four_web_api_calls(small_engine, tmp_path, clean_redis) -> None:
    # A real interval: the quoted-passage answer arrives at once, so no streaming edit may precede the final one.
    async with make_bot(small_engine, tmp_path, clean_redis, stream_edit_interval_s=1.0) as bot:
        ts = "905.000100"
        await ask(bot, ts)
        await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove", timestamp=ts))
        await asyncio.sleep(0.3)  # anything late would show up now
        assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == [
            "reactions.add",
            "chat.postMessage",
            "chat.update",
            "reactions.remove",
        ]


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 404}], ids=["500", "expired-404"])
async def test_ask_whose_response_url_fails_answers_by_ephemeral_message(
    bot: SlackBot, fault: dict[str, Any]
) -> None:
    bot.fake.inject("respond", **fault)
    resp, _ = await bot.post_command(slash("/ask", QUESTION, response_url=bot.fake.response_url()))
    assert resp.status_code == 200
    [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
    assert ephemeral.params["user"] == "U1" and ephemeral.params["channel"] == "C1"
    assert shows_answer(ephemeral)
    record = await bot.fake.wait_for(lambda: only_answer(bot))
    assert record.outcome == "answered"


async def test_ask_with_every_route_refused_is_logged_as_undelivered(bot: SlackBot) -> None:
    bot.fake.inject("respond", status=500)
    bot.fake.inject("chat.postEphemeral", error="channel_not_found")
    bot.fake.inject("chat.postMessage", error="restricted_action")
    await bot.post_command(slash("/ask", QUESTION, response_url=bot.fake.response_url()))
    record = await bot.fake.wait_for(lambda: only_answer(bot))
    assert record.outcome == "undelivered" and "respond" in (record.error or "")


async def test_sources_whose_response_url_fails_answers_by_ephemeral_message(bot: SlackBot) -> None:
    bot.fake.inject("respond", status=500)
    await bot.post_command(slash("/sources", QUESTION, response_url=bot.fake.response_url()))
    [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
    assert "Deploying to production" in ephemeral.params["text"]
