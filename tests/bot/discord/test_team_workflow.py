"""Issue 14 on Discord: answer channels, private-first answers, the hand-off to a person, vote buttons and hidden
documents, with the real discord.py client on simcord, the real engine, Redis and query log."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from simcord import Env
from simcord.builders import ChannelHandle
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.answer_actions import NO_ESCALATION, NOT_TAGGED
from bot.discord.components import ESCALATE_LABEL, NOT_YOURS
from rag_core.feedback import FeedbackStore
from rag_core.feedback import workflow as wf
from rag_core.feedback.models import AnswerRecord
from tests.bot.discord.conftest import ADMIN_ROLE

pytestmark = pytest.mark.simcord(settle_timeout=60)

QUESTION = "How much are team dinners reimbursed per person?"
UNANSWERABLE = "What is the airspeed velocity of an unladen swallow in furlongs?"


def _world(env: Env) -> tuple[Any, ChannelHandle, Any]:
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    return guild, general, alice


def _bot_messages(env: Env, channel: ChannelHandle) -> list[discord.Message]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


def _logged(feedback: FeedbackStore) -> list[AnswerRecord]:
    with Session(feedback.engine) as session:
        return list(session.scalars(select(AnswerRecord).order_by(AnswerRecord.created_at)))


def _labels(message: Any) -> list[str]:
    """Button labels of a message (discord.py's ActionRows or simcord's raw component dicts)."""
    labels = []
    for row in message.components:
        for c in row.get("components", []) if isinstance(row, dict) else row.children:
            labels.append(c.get("label") if isinstance(c, dict) else c.label)
    return labels


def _threads(env: Env, guild: Any) -> list[ChannelHandle]:
    return [
        ChannelHandle(env, guild, c)
        for c in env.backend.channels.values()
        if getattr(c, "type", None) in (11, 12) and getattr(c, "guild_id", None) == guild.id
    ]


# --- 1. answer channels ---------------------------------------------------------------------------------------


async def test_answer_channel_answers_a_question_without_a_mention_in_a_new_thread(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    settings.auto_answer_channels = [str(general.id)]

    question = await alice.send(general, QUESTION)

    # nothing in the channel itself but (when it arrived) Discord's own "started a thread" line
    assert all(m.type is discord.MessageType.thread_created for m in _bot_messages(env, general))
    thread = env.bot.get_channel(question.id) or await env.bot.fetch_channel(question.id)
    assert isinstance(thread, discord.Thread) and thread.parent_id == general.id
    [record] = _logged(feedback)
    assert record.outcome == "answered" and record.channel == str(general.id)


async def test_answer_channel_ignores_chatter_bots_threads_and_logs_abstentions_without_posting(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    settings.auto_answer_channels = [str(general.id)]
    other_bot = guild.add_member(env.create_user("otherbot", bot=True))

    await alice.send(general, "thanks all, see you tomorrow")  # not a question
    await other_bot.send(general, QUESTION)  # a bot
    edited = await alice.send(general, "lunch")
    await alice.edit(edited, QUESTION)  # an edit into a question is not a new question
    assert _logged(feedback) == []

    await alice.send(general, UNANSWERABLE)
    [record] = _logged(feedback)
    assert record.outcome == "abstained"
    assert _bot_messages(env, general) == []


# --- 2. private first -----------------------------------------------------------------------------------------


async def test_private_first_opens_privately_for_the_asker_and_shares_the_same_answer(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    bob = guild.add_member(env.create_user("bob"))
    settings.private_first = True

    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [prompt] = _bot_messages(env, general)
    assert "only you can open it" in prompt.content.lower() and "Team dinners" not in prompt.content
    [record] = _logged(feedback)

    refused = await bob.click(prompt, label="Show answer")
    assert refused.ephemeral and refused.response.content == NOT_YOURS

    shown = await alice.click(prompt, label="Show answer")
    assert shown.ephemeral and shown.response.content == record.answer_text
    assert _labels(shown.response) == ["Share in thread", "Dismiss", ESCALATE_LABEL]

    await alice.click(shown.response.message, label="Share in thread")
    [_, public] = _bot_messages(env, general)
    assert public.content == record.answer_text and not public.flags.ephemeral
    answer_id = feedback.answer_for_message(
        platform="discord", channel=str(general.id), message_id=str(public.id)
    )
    assert answer_id == record.id  # the same answer, so votes on it count for it
    await bob.react(public, "👍")
    assert [v.value for v in feedback.votes(record.id)] == [1]
    assert len(_logged(feedback)) == 1


async def test_ask_command_offers_share_and_dismiss(simcord_env: Env, feedback: FeedbackStore) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    result = await alice.slash(general, "ask", question=QUESTION)
    assert result.ephemeral and _labels(result.response) == ["Share in thread", "Dismiss", ESCALATE_LABEL]

    await alice.click(result.response.message, label="Dismiss")
    assert _bot_messages(env, general) == []


# --- 3. hand-off to a person ----------------------------------------------------------------------------------


async def test_get_help_tags_the_channels_people_and_a_tagged_role_member_resolves_it(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    helpers = guild.create_role("Helpers")
    carol = guild.add_member(env.create_user("carol"), roles=[helpers])
    dave = guild.add_member(env.create_user("dave"))
    settings.escalation = {str(general.id): [f"&{helpers.id}", "123456789012345678"]}

    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [answer] = _bot_messages(env, general)
    assert _labels(answer) == ["👍", "👎", ESCALATE_LABEL]

    said = await alice.click(answer, label=ESCALATE_LABEL)
    [tag] = [m for m in _bot_messages(env, general) if m.id != answer.id]
    assert tag.content.startswith(f"<@&{helpers.id}> <@123456789012345678>, <@{alice.id}> would like")
    assert QUESTION in tag.content
    request = [
        r for r in env.http_requests if r.method == "POST" and r.json and r.json.get("content") == tag.content
    ]
    allowed = request[0].json["allowed_mentions"]  # the tag notifies exactly its people and the asker
    assert list(map(str, allowed["roles"])) == [str(helpers.id)]
    assert "123456789012345678" in map(str, allowed["users"])
    assert "I've asked" in said.followups[0].content
    [record] = _logged(feedback)
    escalation = wf.get_escalation(feedback, record.id)
    assert escalation is not None and escalation.channel == str(general.id) and escalation.resolved_at is None

    refused = await dave.click(tag, label="Resolved")
    assert refused.response.content == NOT_TAGGED
    await carol.click(tag, label="Resolved")
    closed = next(m for m in _bot_messages(env, general) if m.id == tag.id)
    assert f"Resolved by <@{carol.id}>" in closed.content and _labels(closed) == []
    assert wf.get_escalation(feedback, record.id).resolved_at is not None


async def test_i_dont_know_offers_the_hand_off_and_no_configuration_says_so(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    await alice.send(general, f"{env.bot.user.mention} {UNANSWERABLE}")
    [answer] = _bot_messages(env, general)
    assert _labels(answer) == [ESCALATE_LABEL]
    said = await alice.click(answer, label=ESCALATE_LABEL)
    assert said.ephemeral and said.response.content == NO_ESCALATION


# --- 5. vote buttons ------------------------------------------------------------------------------------------


async def test_vote_buttons_and_reactions_are_one_vote_per_person(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [answer] = _bot_messages(env, general)
    [record] = _logged(feedback)

    thanks = await alice.click(answer, label="👍")
    assert thanks.ephemeral and "recorded" in thanks.response.content
    assert [v.value for v in feedback.votes(record.id)] == [1]
    await alice.react(answer, "👎")  # the same person: the reaction replaces the button vote
    assert [v.value for v in feedback.votes(record.id)] == [-1]
    await alice.click(answer, label="👍")
    assert [v.value for v in feedback.votes(record.id)] == [1]


# --- 4. hidden documents --------------------------------------------------------------------------------------


async def test_an_admin_hides_a_document_from_sources_and_unhides_it(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    librarians = guild.create_role(ADMIN_ROLE)
    carol = guild.add_member(env.create_user("carol"), roles=[librarians])

    plain = await alice.slash(general, "sources", question=QUESTION)
    assert _labels(plain.response) == []  # not an admin: no hide action
    listing = await carol.slash(general, "sources", question=QUESTION)
    assert "Expenses policy" in listing.response.embeds[0].description.splitlines()[0]
    hidden = await carol.click(listing.response.message, label="Hide 1")
    assert hidden.response.content == "Hidden “Expenses policy”: it will not be cited until unhidden."
    assert wf.hidden_documents(feedback) == {("people-drive", "expenses")}
    await carol.click(hidden.response.message, label="Unhide")
    assert wf.hidden_documents(feedback) == set()
