"""Mentions, DMs, threads, streaming, duplicates and failures over signed HTTP (Events API mode)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.slack.blocks import SEARCHING, VOTE_HINT
from tests.bot.slack.conftest import FINANCE_CHANNEL, SlackBot, make_bot
from tests.bot.slack.engines import FailingEngine, RecordingEngine, SlowEngine
from tests.bot.slack.fake_slack import BOT_ID, BOT_USER_ID, direct_message, event_callback, mention


def final_update(bot: SlackBot, channel: str):
    """The chat.update that rendered an answer with blocks, once it has happened."""
    return lambda: [c for c in bot.fake.calls_to("chat.update", channel=channel) if c.params.get("blocks")]


def blocks_text(params: dict) -> str:
    return json.dumps(params.get("blocks", []))


async def test_forged_signature_and_stale_timestamp_get_401(bot: SlackBot) -> None:
    body = json.dumps(event_callback(mention("hello", ts="100.000100")))
    forged = {**bot.signed_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
    stale = bot.signed_headers(body, timestamp=int(time.time()) - 10 * 60)
    for headers in (forged, stale):
        resp = await bot.http.post(
            "/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert resp.status_code == 401
    await asyncio.sleep(0.2)
    assert not bot.fake.calls_to("chat.postMessage")
    assert not bot.fake.calls_to("reactions.add")


async def test_mention_reacts_replies_in_thread_and_finishes_with_cited_blocks(bot: SlackBot) -> None:
    ts = "100.000100"
    resp, elapsed = await bot.post_event(event_callback(mention("How do I deploy to production?", ts=ts)))
    assert resp.status_code == 200 and elapsed < 3

    [final] = await bot.fake.wait_for(final_update(bot, "C1"))
    [eyes] = bot.fake.calls_to("reactions.add", channel="C1", timestamp=ts)
    assert eyes.params["name"] == "eyes"
    [placeholder] = bot.fake.calls_to("chat.postMessage", channel="C1")
    assert placeholder.params["thread_ts"] == ts and placeholder.params["text"] == SEARCHING
    rendered = blocks_text(final.params)
    assert "<https://wiki.example.com/deploy|Deploying to production>" in rendered
    assert "Merge to main" in rendered and "[1]" in rendered
    assert VOTE_HINT.replace(":+1:", "").split(" or")[0] in rendered
    assert all(len(b["text"]["text"]) <= 3000 for b in final.params["blocks"] if b["type"] == "section")

    [unreact] = await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove", timestamp=ts))
    assert unreact.params["name"] == "eyes"
    assert eyes.at < placeholder.at < final.at <= unreact.at

    # The answer is in the query log, linked to the reply votes will be cast on.
    answer_id = await bot.fake.wait_for(
        lambda: bot.feedback.answer_for_message(platform="slack", channel="C1", message_id=final.params["ts"])
    )
    record = bot.feedback.get_answer(answer_id)
    assert record.question == "How do I deploy to production?"
    assert record.outcome == "answered"
    assert [c.doc_id for c in record.citations][0] == "deploy"


async def test_answer_streams_as_throttled_edits_before_the_final_blocks(
    small_engine, tmp_path, clean_redis
) -> None:
    slow = SlowEngine(small_engine, pieces=4, pause_s=0.2)
    async with make_bot(slow, tmp_path, clean_redis, stream_edit_interval_s=0.1) as bot:
        resp, elapsed = await bot.post_event(
            event_callback(mention("How do I reset my VPN?", ts="110.000100"))
        )
        # Acked while the engine has not even started answering.
        assert resp.status_code == 200 and elapsed < 3
        assert await asyncio.to_thread(slow.entered.wait, 10)
        assert not final_update(bot, "C1")()
        slow.release.set()

        await bot.fake.wait_for(final_update(bot, "C1"))
        updates = bot.fake.calls_to("chat.update", channel="C1")
        streamed = [c.params["text"] for c in updates if not c.params.get("blocks")]
        assert len(streamed) >= 2
        assert all(text.endswith(" …") for text in streamed)
        assert all(len(a) < len(b) for a, b in zip(streamed, streamed[1:], strict=False))
        assert updates[-1].params.get("blocks")  # the final render comes last


async def test_thread_follow_up_sends_earlier_messages_as_history(
    small_engine, tmp_path, clean_redis
) -> None:
    engine = RecordingEngine(small_engine)
    async with make_bot(engine, tmp_path, clean_redis) as bot:
        root = "200.000100"
        bot.fake.threads[("C1", root)] = [
            {
                "type": "message",
                "ts": root,
                "user": "U1",
                "text": f"<@{BOT_USER_ID}> How are team dinners reimbursed?",
            },
            {
                "type": "message",
                "ts": "200.000200",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": "Team dinners are reimbursed up to $60 per person, tips included. [1]",
            },
            {
                "type": "message",
                "ts": "201.000100",
                "user": "U1",
                "text": f"<@{BOT_USER_ID}> and for contractors?",
            },
        ]
        await bot.post_event(event_callback(mention("and for contractors?", ts="201.000100", thread_ts=root)))
        [final] = await bot.fake.wait_for(final_update(bot, "C1"))

        [replies] = bot.fake.calls_to("conversations.replies")
        assert replies.params["channel"] == "C1" and replies.params["ts"] == root
        [call] = engine.calls
        assert call["question"] == "and for contractors?"
        assert [(t.role, t.text) for t in call["history"]] == [
            ("user", "How are team dinners reimbursed?"),
            ("assistant", "Team dinners are reimbursed up to $60 per person, tips included. [1]"),
        ]
        [placeholder] = bot.fake.calls_to("chat.postMessage")
        assert placeholder.params["thread_ts"] == root
        assert "contractors" in blocks_text(final.params).lower()


async def test_direct_message_is_answered(bot: SlackBot) -> None:
    ts = "300.000100"
    await bot.post_event(event_callback(direct_message("How do I reset my VPN?", ts=ts)))
    [final] = await bot.fake.wait_for(final_update(bot, "D1"))
    assert "<https://drive.example.com/vpn|VPN how-to>" in blocks_text(final.params)
    [placeholder] = bot.fake.calls_to("chat.postMessage", channel="D1")
    assert placeholder.params["thread_ts"] == ts


async def test_messages_from_bots_including_itself_are_ignored(bot: SlackBot) -> None:
    from_other_bot = direct_message("How do I connect to the VPN?", ts="310.000100") | {"bot_id": "BOTHER"}
    from_self = direct_message("How do I connect to the VPN?", ts="311.000100") | {
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
    }
    bot_subtype = direct_message("hi", ts="312.000100") | {"subtype": "bot_message"}
    for event in (from_other_bot, from_self, bot_subtype):
        resp, _ = await bot.post_event(event_callback(event))
        assert resp.status_code == 200
    await bot.post_event(event_callback(direct_message("How do I deploy to production?", ts="313.000100")))
    await bot.fake.wait_for(final_update(bot, "D1"))
    [only] = bot.fake.calls_to("chat.postMessage")
    assert only.params["thread_ts"] == "313.000100"


async def test_retried_and_duplicate_deliveries_produce_one_answer(bot: SlackBot) -> None:
    body = event_callback(mention("Who gets paged when on call?", ts="400.000100"))
    results = await asyncio.gather(
        bot.post_event(body), bot.post_event(body, retry=1), bot.post_event(body, retry=2)
    )
    assert all(resp.status_code == 200 for resp, _ in results)
    await bot.fake.wait_for(final_update(bot, "C1"))
    # A DM mention arrives both as app_mention and as message.im: still one answer.
    dm_text = f"<@{BOT_USER_ID}> How do I deploy to production?"
    dm = direct_message(dm_text, ts="401.000100")
    await bot.post_event(event_callback(dm))
    await bot.post_event(
        event_callback(mention("How do I deploy to production?", channel="D1", ts="401.000100"))
    )
    await bot.fake.wait_for(final_update(bot, "D1"))
    await asyncio.sleep(0.3)  # let any duplicate that slipped through reach the fake server
    assert len(bot.fake.calls_to("chat.postMessage", channel="C1")) == 1
    assert len(bot.fake.calls_to("chat.postMessage", channel="D1")) == 1
    assert len(bot.fake.calls_to("reactions.add")) == 2


async def test_engine_failure_gives_an_apology_with_the_sources_found(
    small_engine, tmp_path, clean_redis
) -> None:
    async with make_bot(FailingEngine(small_engine), tmp_path, clean_redis) as bot:
        ts = "500.000100"
        await bot.post_event(event_callback(mention("How do I deploy to production?", ts=ts)))
        [final] = await bot.fake.wait_for(final_update(bot, "C1"))
        rendered = blocks_text(final.params)
        assert "Sorry, something went wrong" in rendered
        assert "<https://wiki.example.com/deploy|Deploying to production>" in rendered
        await bot.fake.wait_for(lambda: bot.fake.calls_to("reactions.remove", timestamp=ts))


async def test_private_sources_are_never_cited_outside_their_channels(bot: SlackBot) -> None:
    question = "What does the 2027 headcount budget allow?"
    await bot.post_event(event_callback(mention(question, channel="C1", ts="600.000100")))
    await bot.post_event(event_callback(mention(question, channel=FINANCE_CHANNEL, ts="600.000200")))
    [public] = await bot.fake.wait_for(final_update(bot, "C1"))
    [private] = await bot.fake.wait_for(final_update(bot, FINANCE_CHANNEL))
    assert "https://drive.example.com/budget|" not in blocks_text(public.params)
    assert "https://drive.example.com/budget|" in blocks_text(private.params)


async def test_over_the_rate_limit_gets_a_short_reply_not_silence(
    small_engine, tmp_path, clean_redis
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, rate_limit_per_minute=1) as bot:
        await bot.post_event(event_callback(mention("How do I deploy to production?", ts="700.000100")))
        await bot.fake.wait_for(final_update(bot, "C1"))
        await bot.post_event(event_callback(mention("And the VPN?", ts="700.000200")))
        [refusal] = await bot.fake.wait_for(
            lambda: bot.fake.calls_to("chat.postMessage", thread_ts="700.000200")
        )
        assert "more than 1 question" in refusal.params["text"]


async def test_over_the_daily_spend_cap_gets_a_short_reply(small_engine, tmp_path, clean_redis) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, daily_spend_cap_usd=0.5) as bot:
        from bot.conversation import _utc_day

        bot.conversation.kv.incr(f"spend:{_utc_day()}", 0.75, ttl_s=60)
        await bot.post_event(event_callback(mention("How do I deploy to production?", ts="710.000100")))
        [refusal] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        assert "budget is used up" in refusal.params["text"]


async def test_fifty_concurrent_mentions_get_fifty_answers_all_acked_in_time(
    bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "(asked by person N)" suffixes ask for something no page holds; this test is about load, not abstention.
    monkeypatch.setattr(bot.conversation.engine.settings, "answerability_min", 0.0)
    questions = [
        "How do I deploy to production?",
        "How do I connect to the VPN?",
        "Are team dinners covered for contractors?",
        "Who gets paged when on call?",
        "Can I deploy on Friday afternoon?",
    ]
    bodies = [
        event_callback(
            mention(
                f"{questions[i % len(questions)]} (asked by person {i})",
                user=f"U{i}",
                channel="C50",
                ts=f"800.{i:06d}",
            )
        )
        for i in range(50)
    ]
    results = await asyncio.gather(*(bot.post_event(b) for b in bodies))
    assert all(resp.status_code == 200 for resp, _ in results)
    assert max(elapsed for _, elapsed in results) < 3

    finals = await bot.fake.wait_for(
        lambda: len(final_update(bot, "C50")()) == 50 and final_update(bot, "C50")(), timeout=120
    )
    # One thread reply per question, each edited into its own final answer with sources.
    replies = bot.fake.calls_to("chat.postMessage", channel="C50")
    assert sorted(c.params["thread_ts"] for c in replies) == sorted(b["event"]["ts"] for b in bodies)
    assert len({c.params["ts"] for c in finals}) == 50
    assert all("*Sources*" in blocks_text(c.params) for c in finals)


async def test_llm_answer_is_streamed_and_rendered_with_its_citations(
    llm_engine, openai_server, tmp_path, clean_redis
) -> None:
    openai_server.behaviour.reply = "Run **make deploy ENV=prod** after CI passes [1]."
    async with make_bot(llm_engine, tmp_path, clean_redis) as bot:
        await bot.post_event(event_callback(mention("How do I deploy to production?", ts="120.000100")))
        [final] = await bot.fake.wait_for(final_update(bot, "C1"))
        rendered = blocks_text(final.params)
        assert "Run *make deploy ENV=prod* after CI passes [1]." in rendered
        assert "<https://wiki.example.com/deploy|Deploying to production>" in rendered
        # one streamed answer (the short multi-query call before it is not streamed)
        assert len([r for r in openai_server.behaviour.requests if r["body"].get("stream")]) == 1
