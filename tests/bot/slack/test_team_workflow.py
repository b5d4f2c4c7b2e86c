"""Issue 14 on Slack: answer channels, private-first answers, the hand-off to a person, vote buttons, and hidden
documents, through the real Bolt app over signed HTTP against the local Slack server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.answer_actions import NO_ESCALATION, NOT_TAGGED
from bot.slack import buttons
from rag_core.engine import Engine
from rag_core.feedback import workflow as wf
from rag_core.feedback.doc_votes import StoredDocSignals
from rag_core.feedback.models import AnswerRecord
from rag_core.kv import MemoryKV
from tests.bot.slack.conftest import ADMIN, SlackBot, make_bot
from tests.bot.slack.fake_slack import (
    block_action,
    button_in,
    channel_message,
    event_callback,
    mention,
    reaction,
    slash,
)

ANSWERS = "CANS"  # an answer channel
PRIVATE = "CPRIV"  # a private-first channel
QUESTION = "How do I reset my VPN?"
UNANSWERABLE = "What is the airspeed velocity of an unladen swallow in furlongs?"


def _logged(bot: SlackBot) -> list[AnswerRecord]:
    with Session(bot.feedback.engine) as session:
        return list(session.scalars(select(AnswerRecord).order_by(AnswerRecord.created_at)))


async def click(bot: SlackBot, action_id: str, value: str, **kwargs: Any) -> None:
    """Click a button: a signed `block_actions` interaction, acked at once."""
    payload = block_action(action_id, value, response_url=bot.fake.response_url(action_id), **kwargs)
    resp, elapsed = await bot.post_command({"payload": json.dumps(payload)})
    assert resp.status_code == 200 and elapsed < 3


def _final_answer(bot: SlackBot, channel: str) -> Any:
    return lambda: [c for c in bot.fake.calls_to("chat.update", channel=channel) if c.params.get("blocks")]


async def _answered(
    bot: SlackBot, ts: str, channel: str = "C1", text: str = QUESTION
) -> tuple[str, list, str]:
    """Mention the bot; (reply ts, final blocks, answer id) once the answer is linked."""
    await bot.post_event(event_callback(mention(text, ts=ts, channel=channel)))
    [final] = await bot.fake.wait_for(_final_answer(bot, channel))
    reply_ts = final.params["ts"]
    answer_id = await bot.fake.wait_for(
        lambda: bot.feedback.answer_for_message(platform="slack", channel=channel, message_id=reply_ts)
    )
    return reply_ts, final.params["blocks"], answer_id


# --- 1. answer channels ---------------------------------------------------------------------------------------


async def test_answer_channel_answers_new_questions_in_a_thread_without_a_mention(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, auto_answer_channels=[ANSWERS]) as bot:
        await bot.post_event(event_callback(channel_message(QUESTION, channel=ANSWERS, ts="500.000100")))
        [post] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel=ANSWERS))
        assert post.params["thread_ts"] == "500.000100"
        assert "VPN how-to" in json.dumps(post.params["blocks"])
        assert not bot.fake.calls_to("chat.update")  # no "Searching…" placeholder, no streamed drafts
        [record] = await bot.fake.wait_for(lambda: _logged(bot))
        assert record.outcome == "answered" and record.channel == ANSWERS


async def test_answer_channel_ignores_threads_bots_edits_joins_chatter_and_other_channels(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, auto_answer_channels=[ANSWERS]) as bot:
        ignored = [
            channel_message(QUESTION, channel=ANSWERS, ts="501.1", thread_ts="500.1"),  # a thread reply
            channel_message(QUESTION, channel=ANSWERS, ts="501.2", bot_id="BOTHER"),  # another bot
            channel_message(QUESTION, channel=ANSWERS, ts="501.3", subtype="message_changed"),  # an edit
            channel_message(
                "<@U2> has joined the channel", channel=ANSWERS, ts="501.4", subtype="channel_join"
            ),
            channel_message("thanks all, see you tomorrow", channel=ANSWERS, ts="501.5"),  # not a question
            channel_message(QUESTION, channel="COTHER", ts="501.6"),  # not an answer channel
        ]
        for event in ignored:
            resp, _ = await bot.post_event(event_callback(event))
            assert resp.status_code == 200
        # A question after them is answered: the ones before were ignored, not queued.
        await bot.post_event(event_callback(channel_message(QUESTION, channel=ANSWERS, ts="502.1")))
        [post] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        assert post.params["thread_ts"] == "502.1"
        [record] = await bot.fake.wait_for(lambda: _logged(bot))
        assert record.question == QUESTION


async def test_answer_channel_logs_an_abstention_and_posts_nothing(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, auto_answer_channels=[ANSWERS]) as bot:
        await bot.post_event(event_callback(channel_message(UNANSWERABLE, channel=ANSWERS, ts="503.1")))
        [record] = await bot.fake.wait_for(lambda: _logged(bot))
        assert record.outcome == "abstained"
        assert not bot.fake.calls_to("chat.postMessage") and not bot.fake.calls_to("reactions.add")


def test_the_question_filter_is_cheap_and_configurable(tmp_path: Path) -> None:
    from bot.answer_channels import looks_like_question
    from rag_core.settings import Settings

    s = Settings(
        _env_file=None, data_dir=tmp_path, auto_answer_min_words=5, auto_answer_question_words=["anyone"]
    )
    assert looks_like_question("VPN broken?", s)
    assert looks_like_question("Anyone know the wifi password", s)
    assert looks_like_question("the deploy pipeline is red again today", s)  # long enough
    assert not looks_like_question("how nice", s)  # "how" is not a question word here
    assert not looks_like_question("lunch now", s) and not looks_like_question("  ", s)


# --- 2. private first -----------------------------------------------------------------------------------------


async def test_private_first_answers_the_asker_alone_then_shares_the_same_answer(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, private_first_channels={PRIVATE: True}) as bot:
        await bot.post_event(event_callback(mention(QUESTION, ts="600.1", channel=PRIVATE, user="U7")))
        [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
        assert ephemeral.params["user"] == "U7" and ephemeral.params["thread_ts"] == "600.1"
        assert not bot.fake.calls_to("chat.postMessage")  # nothing public yet
        share = button_in(ephemeral.params["blocks"], buttons.SHARE)
        button_in(ephemeral.params["blocks"], buttons.DISMISS)
        [record] = await bot.fake.wait_for(lambda: _logged(bot))

        await click(bot, buttons.SHARE, share["value"], user="U7", channel=PRIVATE, ephemeral=True)
        [public] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel=PRIVATE))
        assert public.params["thread_ts"] == "600.1" and "VPN how-to" in json.dumps(public.params["blocks"])
        [gone] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.SHARE))
        assert gone.params["delete_original"] is True
        # The public message carries the same answer: reactions on it are votes on it.
        public_ts = bot.fake.threads[(PRIVATE, "600.1")][-1]["ts"]
        answer_id = await bot.fake.wait_for(
            lambda: bot.feedback.answer_for_message(platform="slack", channel=PRIVATE, message_id=public_ts)
        )
        assert answer_id == record.id
        await bot.post_event(
            event_callback(reaction("reaction_added", "+1", user="U8", channel=PRIVATE, ts=public_ts))
        )
        await bot.fake.wait_for(lambda: bot.feedback.votes(record.id))
        assert len(_logged(bot)) == 1  # shared, not answered twice


async def test_private_first_dismiss_deletes_the_private_answer_and_posts_nothing(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, private_first=True) as bot:
        await bot.post_event(event_callback(mention(QUESTION, ts="601.1", channel="C1")))
        [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
        dismiss = button_in(ephemeral.params["blocks"], buttons.DISMISS)
        await click(bot, buttons.DISMISS, dismiss["value"], ephemeral=True)
        [gone] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.DISMISS))
        assert gone.params["delete_original"] is True
        assert not bot.fake.calls_to("chat.postMessage")


async def test_a_channel_can_turn_private_first_off(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(
        small_engine, tmp_path, clean_redis, private_first=True, private_first_channels={"C1": False}
    ) as bot:
        await _answered(bot, "602.1")
        assert not bot.fake.calls_to("chat.postEphemeral")


# --- 3. hand-off to a person ----------------------------------------------------------------------------------


async def test_get_help_tags_the_channels_people_records_it_and_the_tagged_person_resolves_it(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, escalation={"C1": ["UHELP", "SHELP"]}) as bot:
        bot.fake.usergroups["SHELP"] = ["UGROUP"]
        reply_ts, blocks, answer_id = await _answered(bot, "700.1")
        escalate = button_in(blocks, buttons.ESCALATE)
        message = {"ts": reply_ts, "thread_ts": "700.1", "blocks": blocks, "text": "answer"}
        await click(bot, buttons.ESCALATE, escalate["value"], user="U1", message=message)

        [tag] = await bot.fake.wait_for(
            lambda: [c for c in bot.fake.calls_to("chat.postMessage") if "UHELP" in c.params["text"]]
        )
        assert tag.params["text"].startswith("<@UHELP> <!subteam^SHELP>, <@U1> would like a person's help")
        assert QUESTION in tag.params["text"]
        resolve = button_in(tag.params["blocks"], buttons.RESOLVE)
        record = wf.get_escalation(bot.feedback, answer_id)
        assert record is not None and record.channel == "C1" and record.targets == ["UHELP", "SHELP"]
        assert record.resolved_at is None
        [said] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.ESCALATE))
        assert said.params["response_type"] == "ephemeral" and "asked <@UHELP>" in said.params["text"]

        tag_message = {
            "ts": "1700000099.000100",
            "thread_ts": "700.1",
            "blocks": tag.params["blocks"],
            "text": "t",
        }
        await click(bot, buttons.RESOLVE, resolve["value"], user="USTRANGER", message=tag_message)
        [refused] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.RESOLVE))
        assert refused.params["text"] == NOT_TAGGED
        assert wf.get_escalation(bot.feedback, answer_id).resolved_at is None

        await click(bot, buttons.RESOLVE, resolve["value"], user="UGROUP", message=tag_message)  # via SHELP
        [closed] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.update", ts="1700000099.000100"))
        assert "Resolved by <@UGROUP>" in json.dumps(closed.params["blocks"])
        assert buttons.RESOLVE not in json.dumps(closed.params["blocks"])  # the button is gone
        assert wf.get_escalation(bot.feedback, answer_id).resolved_at is not None


async def test_i_dont_know_offers_the_hand_off_and_no_configuration_says_so(bot: SlackBot) -> None:
    reply_ts, blocks, answer_id = await _answered(bot, "701.1", text=UNANSWERABLE)
    assert bot.feedback.get_answer(answer_id).abstained
    escalate = button_in(blocks, buttons.ESCALATE)
    assert buttons.VOTE_UP not in json.dumps(blocks)  # nothing to vote on in an "I don't know"
    await click(bot, buttons.ESCALATE, escalate["value"], message={"ts": reply_ts, "thread_ts": "701.1"})
    [said] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.ESCALATE))
    assert said.params["text"] == NO_ESCALATION
    assert wf.get_escalation(bot.feedback, answer_id) is None


# --- 5. vote buttons ------------------------------------------------------------------------------------------


async def test_vote_buttons_and_reactions_are_one_vote_per_person(bot: SlackBot) -> None:
    reply_ts, blocks, answer_id = await _answered(bot, "800.1")
    up = button_in(blocks, buttons.VOTE_UP)
    await click(bot, buttons.VOTE_UP, up["value"], user="U5", message={"ts": reply_ts})
    [thanks] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.VOTE_UP))
    assert thanks.params["response_type"] == "ephemeral" and thanks.params["replace_original"] is False
    assert [v.value for v in bot.feedback.votes(answer_id)] == [1]

    # The same person's 👎 reaction replaces the button vote: still one vote.
    await bot.post_event(
        event_callback(reaction("reaction_added", "-1", user="U5", channel="C1", ts=reply_ts))
    )
    await bot.fake.wait_for(lambda: [v.value for v in bot.feedback.votes(answer_id)] == [-1])
    down = button_in(blocks, buttons.VOTE_DOWN)
    await click(bot, buttons.VOTE_DOWN, down["value"], user="U6", message={"ts": reply_ts})
    await bot.fake.wait_for(lambda: len(bot.feedback.votes(answer_id)) == 2)


async def test_a_forged_or_unsigned_click_is_refused(bot: SlackBot) -> None:
    payload = json.dumps({"payload": "x"})
    resp = await bot.http.post(
        "/slack/events",
        content=f"payload={payload}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": "1",
            "X-Slack-Signature": "v0=bad",
        },
    )
    assert resp.status_code == 401


# --- 4. hidden documents --------------------------------------------------------------------------------------


@pytest.fixture
async def signals_bot(small_engine: Engine, tmp_path: Path, clean_redis: str) -> AsyncIterator[SlackBot]:
    """The small engine's index with its own answer cache and document signals from this bot's query log."""
    engine = Engine(
        small_engine.settings,
        store=small_engine.store,
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )
    async with make_bot(engine, tmp_path, clean_redis) as bot:
        engine.doc_signals = StoredDocSignals(bot.feedback, bot.settings)
        yield bot


async def test_an_admin_hides_a_document_from_sources_and_it_is_never_cited_until_unhidden(
    signals_bot: SlackBot,
) -> None:
    bot = signals_bot
    await bot.post_command(slash("/sources", QUESTION, user="U1", response_url=bot.fake.response_url("s1")))
    [plain] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="s1"))
    assert buttons.HIDE not in json.dumps(plain.params["blocks"])  # not an admin: no hide action

    await bot.post_command(slash("/sources", QUESTION, user=ADMIN, response_url=bot.fake.response_url("s2")))
    [listing] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="s2"))
    first = listing.params["blocks"][1]
    assert "VPN how-to" in first["text"]["text"] and first["accessory"]["action_id"] == buttons.HIDE

    await click(bot, buttons.HIDE, first["accessory"]["value"], user="U1")  # a non-admin's forged click
    [refused] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.HIDE))
    assert "Only ragbot admins" in refused.params["text"]
    await click(bot, buttons.HIDE, first["accessory"]["value"], user=ADMIN)
    [_, hidden] = await bot.fake.wait_for(
        lambda: (
            bot.fake.calls_to("respond", name=buttons.HIDE)[1:]
            and bot.fake.calls_to("respond", name=buttons.HIDE)
        )
    )
    assert "Hidden “VPN how-to”" in hidden.params["text"]
    unhide = button_in(hidden.params["blocks"], buttons.UNHIDE)

    _, blocks, _ = await _answered(bot, "900.1")
    assert "VPN how-to" not in json.dumps(blocks)
    await bot.post_command(slash("/sources", QUESTION, user=ADMIN, response_url=bot.fake.response_url("s3")))
    [again] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="s3"))
    assert "VPN how-to" not in json.dumps(again.params["blocks"])

    await click(bot, buttons.UNHIDE, unhide["value"], user=ADMIN)
    await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.UNHIDE))
    await bot.post_command(slash("/sources", QUESTION, user=ADMIN, response_url=bot.fake.response_url("s4")))
    [back] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="s4"))
    assert "VPN how-to" in json.dumps(back.params["blocks"])
