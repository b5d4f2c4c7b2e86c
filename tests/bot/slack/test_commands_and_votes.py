"""Slash commands (/ask, /sources, /resync) and 👍/👎 feedback over signed HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.bot.slack.conftest import ADMIN, SlackBot, make_bot
from tests.bot.slack.fake_slack import direct_message, event_callback, mention, reaction, slash


def responses(bot: SlackBot, name: str = "r"):
    return lambda: bot.fake.calls_to("respond", name=name)


async def test_ask_acks_at_once_then_answers_ephemerally(bot: SlackBot) -> None:
    resp, elapsed = await bot.post_command(
        slash("/ask", "How do I reset my VPN?", response_url=bot.fake.response_url())
    )
    assert resp.status_code == 200 and elapsed < 3
    assert "Searching" in resp.text
    [answer] = await bot.fake.wait_for(responses(bot))
    assert answer.params["response_type"] == "ephemeral"
    assert "<https://drive.example.com/vpn|VPN how-to>" in json.dumps(answer.params["blocks"])
    assert not bot.fake.calls_to("chat.postMessage")  # nothing public


async def test_ask_and_sources_without_a_question_get_a_usage_line(bot: SlackBot) -> None:
    for command in ("/ask", "/sources"):
        resp, _ = await bot.post_command(slash(command, "   ", response_url=bot.fake.response_url()))
        assert resp.status_code == 200
        assert resp.text.startswith(f"Usage: {command} <question>")


async def test_sources_lists_title_link_breadcrumb_snippet_and_score_without_generating(
    bot: SlackBot,
) -> None:
    resp, elapsed = await bot.post_command(
        slash("/sources", "team dinner reimbursement", response_url=bot.fake.response_url())
    )
    assert resp.status_code == 200 and elapsed < 3
    [listing] = await bot.fake.wait_for(responses(bot))
    assert listing.params["response_type"] == "ephemeral"
    blocks = listing.params["blocks"]
    first = blocks[1]["text"]["text"]
    assert first.startswith("*1. <https://drive.example.com/expenses|Expenses policy>*")
    assert "_Team dinners_" in first  # breadcrumb
    assert "Team dinners are reimbursed up to $60 per person" in first  # snippet
    assert blocks[2]["elements"][0]["text"].startswith("score 0.")
    assert "drive.example.com/budget" not in json.dumps(blocks)  # private source, public channel
    assert "Quoted passages" not in json.dumps(blocks)  # no answer text, only sources


async def test_resync_refuses_non_admins_politely_at_once(small_engine, tmp_path, clean_redis) -> None:
    calls: list = []
    async with make_bot(small_engine, tmp_path, clean_redis, resync=lambda *a: calls.append(a) or "") as bot:
        resp, elapsed = await bot.post_command(
            slash("/resync", "", user="U1", response_url=bot.fake.response_url())
        )
        assert resp.status_code == 200 and elapsed < 3
        assert "only ragbot admins" in resp.text
        assert calls == []


async def test_resync_with_malformed_arguments_gets_the_usage_line(
    small_engine, tmp_path, clean_redis
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, resync=lambda *a: "") as bot:
        for text in ("--everything", "eng-wiki people-drive", "nosuchsource"):
            resp, _ = await bot.post_command(
                slash("/resync", text, user=ADMIN, response_url=bot.fake.response_url())
            )
            assert "Usage: /resync [source] [--full]" in resp.text, text


async def test_resync_by_an_admin_acks_then_posts_progress_and_the_report(
    small_engine, tmp_path, clean_redis
) -> None:
    ran: list[tuple] = []
    finish = threading.Event()

    def resync(source, full, progress):
        ran.append((source, full))
        progress("eng-wiki: 3 documents read")
        finish.wait(10)
        return "eng-wiki: 3 added, 0 updated, 0 deleted"

    async with make_bot(small_engine, tmp_path, clean_redis, resync=resync) as bot:
        resp, elapsed = await bot.post_command(
            slash("/resync", "eng-wiki --full", user=ADMIN, response_url=bot.fake.response_url())
        )
        assert resp.status_code == 200 and elapsed < 3
        assert "Syncing `eng-wiki` (full re-read)" in resp.text
        [progress] = await bot.fake.wait_for(responses(bot))
        assert "eng-wiki: 3 documents read" in progress.params["text"]
        finish.set()
        report = await bot.fake.wait_for(lambda: len(responses(bot)()) == 2 and responses(bot)()[1])
        assert "3 added, 0 updated" in report.params["text"]
        assert ran == [("eng-wiki", True)]


async def _answered_mention(bot: SlackBot, ts: str) -> tuple[str, str]:
    """Ask in C1 and return (reply ts, answer id) once the answer is linked for votes."""
    await bot.post_event(event_callback(mention("How do I deploy to production?", ts=ts)))
    [final] = await bot.fake.wait_for(
        lambda: [c for c in bot.fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")]
    )
    reply_ts = final.params["ts"]
    answer_id = await bot.fake.wait_for(
        lambda: bot.feedback.answer_for_message(platform="slack", channel="C1", message_id=reply_ts)
    )
    return reply_ts, answer_id


async def test_reactions_record_replace_and_retract_one_vote_per_user(bot: SlackBot) -> None:
    reply_ts, answer_id = await _answered_mention(bot, "900.000100")

    async def react(kind: str, name: str, user: str) -> None:
        resp, _ = await bot.post_event(
            event_callback(reaction(kind, name, user=user, channel="C1", ts=reply_ts))
        )
        assert resp.status_code == 200

    def values():
        return sorted(v.value for v in bot.feedback.votes(answer_id))

    await react("reaction_added", "+1", "U2")
    await bot.fake.wait_for(lambda: values() == [1])
    await react("reaction_added", "thumbsdown", "U2")  # the same person changes their mind
    await bot.fake.wait_for(lambda: values() == [-1])
    await react("reaction_added", "thumbsup::skin-tone-3", "U3")
    await bot.fake.wait_for(lambda: values() == [-1, 1])
    await react("reaction_removed", "thumbsdown", "U2")
    await bot.fake.wait_for(lambda: values() == [1])
    [vote] = bot.feedback.votes(answer_id)
    assert (vote.platform, vote.channel) == ("slack", "C1")
    record = bot.feedback.get_answer(answer_id)
    assert record.question == "How do I deploy to production?" and record.citations


async def test_reactions_on_other_messages_and_other_emoji_are_ignored(bot: SlackBot) -> None:
    reply_ts, answer_id = await _answered_mention(bot, "910.000100")
    # 👍 on someone else's message, 🎉 on the answer, then a real 👍 to know the earlier ones were processed.
    await bot.post_event(
        event_callback(reaction("reaction_added", "+1", user="U2", channel="C1", ts="910.000100"))
    )
    await bot.post_event(
        event_callback(reaction("reaction_added", "tada", user="U2", channel="C1", ts=reply_ts))
    )
    other_user_msg = reaction("reaction_added", "+1", user="U2", channel="C1", ts=reply_ts) | {
        "item_user": "U9"
    }
    await bot.post_event(event_callback(other_user_msg))
    await bot.post_event(
        event_callback(reaction("reaction_added", "-1", user="U4", channel="C1", ts=reply_ts))
    )
    await bot.fake.wait_for(lambda: bot.feedback.votes(answer_id))
    assert [v.value for v in bot.feedback.votes(answer_id)] == [-1]
    assert bot.feedback.answer_for_message(platform="slack", channel="C1", message_id="910.000100") is None


async def test_votes_work_on_answers_in_direct_messages(bot: SlackBot) -> None:
    await bot.post_event(event_callback(direct_message("How do I reset my VPN?", ts="920.000100")))
    [final] = await bot.fake.wait_for(
        lambda: [c for c in bot.fake.calls_to("chat.update", channel="D1") if c.params.get("blocks")]
    )
    answer_id = await bot.fake.wait_for(
        lambda: bot.feedback.answer_for_message(platform="slack", channel="D1", message_id=final.params["ts"])
    )
    await bot.post_event(
        event_callback(reaction("reaction_added", "+1", user="U1", channel="D1", ts=final.params["ts"]))
    )
    await bot.fake.wait_for(lambda: bot.feedback.votes(answer_id))


async def test_resync_syncs_the_sample_exports_for_real(small_engine, tmp_path, clean_redis) -> None:
    from bot.conversation import make_resync
    from connectors import sample_sources
    from rag_core.kv import make_kv
    from tests.conftest import empty_index_engine

    root = Path(__file__).resolve().parents[3]
    engine = empty_index_engine(small_engine, tmp_path / "index")
    index_settings = engine.settings
    try:
        sources = sample_sources(root)
        settings_for_sync = index_settings.model_copy(update={"sources": sources})
        resync = make_resync(engine, settings_for_sync, make_kv(clean_redis))
        async with make_bot(engine, tmp_path, clean_redis, resync=resync, sources=sources) as bot:
            resp, _ = await bot.post_command(
                slash("/resync", "eng-wiki", user=ADMIN, response_url=bot.fake.response_url())
            )
            assert "Syncing `eng-wiki`" in resp.text
            report = await bot.fake.wait_for(
                lambda: [c for c in responses(bot)() if "Sync report" in c.params["text"]]
            )
            assert "eng-wiki: " in report[0].params["text"] and "failed" not in report[0].params["text"]
            assert engine.index_version == 1

            await bot.post_command(
                slash(
                    "/sources", "How fast must I acknowledge a page?", response_url=bot.fake.response_url("s")
                )
            )
            [listing] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="s"))
            assert listing.params["blocks"][1]["text"]["text"].startswith("*1. On-call runbook*")
    finally:
        engine.close()
