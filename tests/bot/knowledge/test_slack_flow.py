"""The knowledge loop on Slack, through the real Bolt app over signed HTTP against the local Slack server: an
"I don't know", a person answers in the thread, the hand-off is resolved, the answer saved from the modal, and
the same question is then answered with it, cited."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.knowledge import ADMINS_ONLY, NOT_ALLOWED
from bot.slack import buttons
from bot.slack import knowledge as sk
from rag_core.engine import Engine
from rag_core.feedback import curated as cur
from tests.bot.knowledge.test_curated_source import BADGE_A, BADGE_Q
from tests.bot.slack.conftest import ADMIN, SlackBot, make_bot
from tests.bot.slack.fake_slack import (
    block_action,
    button_in,
    event_callback,
    mention,
    message_action,
    view_submission,
)

HELPER = "UHELP"
PRIVATE = "GPRIV"


@pytest.fixture
async def bot(engine: Engine, tmp_path: Path, clean_redis: str) -> AsyncIterator[SlackBot]:
    async with make_bot(engine, tmp_path, clean_redis, escalation={"*": [HELPER]}) as b:
        b.fake.users[HELPER] = {"real_name": "Dana Scully"}
        b.fake.channels[PRIVATE] = {"name": "facilities", "is_private": True}
        yield b


async def post(bot: SlackBot, payload: dict[str, Any]) -> None:
    resp, elapsed = await bot.post_command({"payload": json.dumps(payload)})
    assert resp.status_code == 200 and elapsed < 3, resp.text


async def click(bot: SlackBot, action_id: str, value: str, **kwargs: Any) -> None:
    await post(bot, block_action(action_id, value, response_url=bot.fake.response_url(action_id), **kwargs))


async def ask(bot: SlackBot, ts: str, channel: str = "C1") -> tuple[str, list[dict[str, Any]], str]:
    """Mention the bot with the badge question; (reply ts, final blocks, logged answer id)."""
    await bot.post_event(event_callback(mention(BADGE_Q, ts=ts, channel=channel)))
    final = await bot.fake.wait_for(
        lambda: [
            c
            for c in bot.fake.calls_to("chat.update", channel=channel)
            if c.params.get("blocks")
            and bot.fake.threads.get((channel, ts), [{}])[0].get("ts") == c.params["ts"]
        ]
    )
    reply_ts = final[-1].params["ts"]
    answer_id = await bot.fake.wait_for(
        lambda: bot.feedback.answer_for_message(platform="slack", channel=channel, message_id=reply_ts)
    )
    return reply_ts, final[-1].params["blocks"], answer_id


async def resolve_with_a_human_answer(
    bot: SlackBot, thread: str, channel: str = "C1", *, offered: bool = True
) -> dict[str, Any]:
    """Ask, get "I don't know", call a person, who answers in the thread and resolves: the offer they see."""
    reply_ts, blocks, answer_id = await ask(bot, thread, channel)
    assert bot.feedback.get_answer(answer_id).abstained
    escalate = button_in(blocks, buttons.ESCALATE)
    await click(
        bot,
        buttons.ESCALATE,
        escalate["value"],
        channel=channel,
        message={"ts": reply_ts, "thread_ts": thread},
    )
    [tag] = await bot.fake.wait_for(
        lambda: [
            c for c in bot.fake.calls_to("chat.postMessage", channel=channel) if HELPER in c.params["text"]
        ]
    )
    # The person answers in the thread (a human message: no bot_id).
    bot.fake.threads[(channel, thread)].append(
        {"type": "message", "ts": f"{thread}9", "user": HELPER, "text": BADGE_A}
    )
    tag_ts = bot.fake.threads[(channel, thread)][1]["ts"]
    resolve = button_in(tag.params["blocks"], buttons.RESOLVE)
    tag_message = {"ts": tag_ts, "thread_ts": thread, "blocks": tag.params["blocks"], "text": "t"}
    await click(bot, buttons.RESOLVE, resolve["value"], user=HELPER, channel=channel, message=tag_message)
    [offer] = await bot.fake.wait_for(
        lambda: [
            c
            for c in bot.fake.calls_to("chat.postEphemeral", user=HELPER)
            if sk.SAVE_OFFER in json.dumps(c.params) and (c.fault is None) == offered
        ]
    )
    assert offer.params["thread_ts"] == thread and offer.params["channel"] == channel
    return offer.params


async def test_a_resolved_hand_off_saved_as_an_answer_is_cited_the_next_time(bot: SlackBot) -> None:
    offer = await resolve_with_a_human_answer(bot, "1000.1")
    save = button_in(offer["blocks"], sk.SAVE_OFFER)

    await click(bot, sk.SAVE_OFFER, save["value"], user="USTRANGER", ephemeral=True)  # a forged click
    [refused] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=sk.SAVE_OFFER))
    assert "Only the person who resolved" in refused.params["text"]

    await click(bot, sk.SAVE_OFFER, save["value"], user=HELPER, ephemeral=True)
    [opened] = await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    view = opened.params["view"]
    fields = {
        b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"
    }
    assert fields == {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}  # pre-filled, human replies only
    assert "Everyone who may search" in json.dumps(view["blocks"])

    edited = BADGE_A + " Badges are free."
    submit = view_submission(
        sk.SAVE_VIEW,
        view["private_metadata"],
        {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: edited},
        user=HELPER,
    )
    await post(bot, submit)
    [told] = await bot.fake.wait_for(
        lambda: [
            c for c in bot.fake.calls_to("chat.postEphemeral", user=HELPER) if sk.EDIT in json.dumps(c.params)
        ]
    )
    assert "cited when someone asks" in told.params["text"]
    [saved] = cur.list_answers(bot.feedback)
    assert (saved.author, saved.channel_name, saved.readers) == ("Dana Scully", "c1", None)
    assert saved.thread_url == "https://test.slack.com/archives/C1/p1000.1"
    assert saved.source_answer_id and saved.platform == "slack"

    # The same question again: answered with the person's answer, cited.
    _, blocks, answer_id = await ask(bot, "1001.1")
    answer = bot.feedback.get_answer(answer_id)
    assert not answer.abstained and "Maria at reception" in answer.answer_text
    assert answer.citations[0].source == "answers" and answer.citations[0].title == BADGE_Q
    shown = json.dumps(blocks)
    assert "Answered by Dana Scully in #c1" in shown and "test.slack.com/archives/C1/p1000.1" in shown

    # Its author removes it (a stranger may not); the question is back to "I don't know".
    remove = button_in(told.params["blocks"], sk.REMOVE)
    await click(bot, sk.REMOVE, remove["value"], user="USTRANGER")
    [no] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=sk.REMOVE))
    assert no.params["text"] == NOT_ALLOWED
    await click(bot, sk.REMOVE, remove["value"], user=HELPER)
    await bot.fake.wait_for(lambda: len(bot.fake.calls_to("respond", name=sk.REMOVE)) == 2)
    assert cur.list_answers(bot.feedback) == []
    _, _, again = await ask(bot, "1002.1")
    assert bot.feedback.get_answer(again).abstained


async def test_an_answer_saved_from_a_private_channel_reaches_only_that_channel(bot: SlackBot) -> None:
    offer = await resolve_with_a_human_answer(bot, "1100.1", channel=PRIVATE)
    await click(
        bot, sk.SAVE_OFFER, button_in(offer["blocks"], sk.SAVE_OFFER)["value"], user=HELPER, channel=PRIVATE
    )
    [opened] = await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    assert "only its members" in json.dumps(opened.params["view"]["blocks"])
    values = {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}
    await post(
        bot, view_submission(sk.SAVE_VIEW, opened.params["view"]["private_metadata"], values, user=HELPER)
    )
    await bot.fake.wait_for(lambda: cur.list_answers(bot.feedback))
    [saved] = cur.list_answers(bot.feedback)
    assert saved.readers == ["group:slack:gpriv"]
    await bot.fake.wait_for(
        lambda: [
            c for c in bot.fake.calls_to("chat.postEphemeral", user=HELPER) if sk.EDIT in json.dumps(c.params)
        ]
    )
    # Not cited to a public channel's audience; cited in the private channel it was saved from, whose members
    # are `group:slack:<channel>` in every question asked there (bot/identity.py).
    _, _, answer_id = await ask(bot, "1101.1")
    assert bot.feedback.get_answer(answer_id).abstained
    _, _, answer_id = await ask(bot, "1102.1", channel=PRIVATE)
    record = bot.feedback.get_answer(answer_id)
    assert not record.abstained and saved.id in {c.doc_id for c in record.citations}


async def test_a_channel_slack_will_not_describe_counts_as_private(bot: SlackBot) -> None:
    bot.fake.inject("conversations.info", error="channel_not_found")
    offer = await resolve_with_a_human_answer(bot, "1200.1")
    await click(bot, sk.SAVE_OFFER, button_in(offer["blocks"], sk.SAVE_OFFER)["value"], user=HELPER)
    [opened] = await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    meta = json.loads(opened.params["view"]["private_metadata"])
    assert meta["p"] is True


async def test_an_empty_modal_is_refused_in_the_modal(bot: SlackBot) -> None:
    submit = view_submission(
        sk.SAVE_VIEW, '{"c":"C1"}', {sk.QUESTION_BLOCK: "", sk.ANSWER_BLOCK: "x"}, user=ADMIN
    )
    resp, _ = await bot.post_command({"payload": json.dumps(submit)})
    assert resp.status_code == 200 and resp.json()["response_action"] == "errors"
    assert sk.QUESTION_BLOCK in resp.json()["errors"]
    assert cur.list_answers(bot.feedback) == []


async def test_save_as_answer_shortcut_is_for_admins_and_edits_by_admin_update_the_answer(
    bot: SlackBot,
) -> None:
    bot.fake.threads[("C1", "1300.1")] = [
        {"type": "message", "ts": "1300.1", "user": "U1", "text": BADGE_Q},
        {"type": "message", "ts": "1300.2", "user": "U2", "text": BADGE_A, "thread_ts": "1300.1"},
    ]
    message = {"type": "message", "ts": "1300.2", "user": "U2", "text": BADGE_A, "thread_ts": "1300.1"}
    await post(
        bot, message_action(sk.SAVE_SHORTCUT, message, user="U1", response_url=bot.fake.response_url("sc1"))
    )
    [refused] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="sc1"))
    assert refused.params["text"] == ADMINS_ONLY and not bot.fake.calls_to("views.open")

    await post(
        bot, message_action(sk.SAVE_SHORTCUT, message, user=ADMIN, response_url=bot.fake.response_url("sc2"))
    )
    [opened] = await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    fields = {
        b["block_id"]: b["element"].get("initial_value")
        for b in opened.params["view"]["blocks"]
        if b["type"] == "input"
    }
    assert fields == {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}
    values = {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}
    await post(
        bot, view_submission(sk.SAVE_VIEW, opened.params["view"]["private_metadata"], values, user=ADMIN)
    )
    [told] = await bot.fake.wait_for(
        lambda: [
            c for c in bot.fake.calls_to("chat.postEphemeral", user=ADMIN) if sk.EDIT in json.dumps(c.params)
        ]
    )
    [saved] = cur.list_answers(bot.feedback)
    assert saved.author == ADMIN.lower()  # users.info does not know this one: the Slack handle

    edit = button_in(told.params["blocks"], sk.EDIT)
    await click(bot, sk.EDIT, edit["value"], user=ADMIN)
    [_, edit_view] = await bot.fake.wait_for(
        lambda: bot.fake.calls_to("views.open")[1:] and bot.fake.calls_to("views.open")
    )
    meta = edit_view.params["view"]["private_metadata"]
    assert json.loads(meta)["k"] == saved.id
    changed = {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: "Parking badges: ask Maria, second floor."}
    await post(bot, view_submission(sk.SAVE_VIEW, meta, changed, user=ADMIN))
    await bot.fake.wait_for(  # told once it is stored and synced
        lambda: [
            c for c in bot.fake.calls_to("chat.postEphemeral", user=ADMIN) if "Updated" in c.params["text"]
        ]
    )
    assert cur.get_answer(bot.feedback, saved.id).answer.startswith("Parking badges")
    _, _, answer_id = await ask(bot, "1301.1")
    assert "Parking badges: ask Maria" in bot.feedback.get_answer(answer_id).answer_text
