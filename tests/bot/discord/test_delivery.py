"""Discord delivery never goes silent: a refused reply falls back to plain text, then a DM; what reached nobody is
logged as `undelivered`; the Redis dedupe call never runs on the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from simcord import Env
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversation import Conversation
from rag_core.feedback import FeedbackStore
from rag_core.feedback.models import AnswerRecord
from rag_core.kv import KeyValue

pytestmark = pytest.mark.simcord(settle_timeout=60)

QUESTION = "How much are team dinners reimbursed per person?"
ANSWER_WORDS = "$60 per person"
MISSING_PERMISSIONS = 50013


def _world(env: Env) -> tuple[Any, Any, Any]:
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    user = env.create_user("alice")
    return general, guild.add_member(user), user


def _bot_messages(env: Env, channel: Any) -> list[Any]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


def _outcomes(feedback: FeedbackStore) -> list[tuple[str, str | None]]:
    with Session(feedback.engine) as session:
        return [(r.outcome, r.error) for r in session.scalars(select(AnswerRecord))]


class _LoopCheckingKV:
    """The real KV, noting whether each dedupe call ran on the event loop's thread."""

    def __init__(self, real: KeyValue) -> None:
        self.real = real
        self.on_loop: list[bool] = []

    def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return self.real.set_if_absent(key, value, ttl_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_the_dedupe_call_runs_off_the_event_loop(simcord_env: Env, conversation: Conversation) -> None:
    env = simcord_env
    general, alice, _ = _world(env)
    checking = _LoopCheckingKV(conversation.kv)
    conversation.kv = checking  # type: ignore[assignment]
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    assert checking.on_loop and not any(checking.on_loop)
    assert _bot_messages(env, general)


@pytest.mark.discord_settings(
    stream_edit_interval_s=5.0
)  # no streamed draft: the final reply meets the fault
async def test_a_refused_reply_is_posted_again_as_plain_text(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    general, alice, _ = _world(env)
    # No Embed Links permission: the first reply (with the sources embed) is refused once.
    env.inject_error(
        "POST", f"/channels/{general.id}/messages", status=403, code=MISSING_PERMISSIONS, times=1
    )
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [reply] = _bot_messages(env, general)
    assert ANSWER_WORDS in reply.content and not reply.embeds
    assert "Expenses policy" in reply.content  # the sources, as text
    assert _outcomes(feedback) == [("answered", None)]


async def test_a_channel_refusing_every_post_gets_the_answer_by_dm(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    general, alice, user = _world(env)
    env.inject_error(
        "POST", f"/channels/{general.id}/messages", status=403, code=MISSING_PERMISSIONS, times=None
    )
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    assert not _bot_messages(env, general)
    [dm] = _bot_messages(env, user.dm_channel)
    assert ANSWER_WORDS in dm.content
    assert [o for o, _ in _outcomes(feedback)] == ["answered"]


async def test_nothing_delivered_is_logged_as_undelivered(simcord_env: Env, feedback: FeedbackStore) -> None:
    env = simcord_env
    general, alice, user = _world(env)
    env.inject_error("POST", "/channels/*/messages", status=500, times=None)
    env.inject_error("PATCH", "/channels/*/messages/*", status=500, times=None)
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    assert not _bot_messages(env, general)
    [(outcome, error)] = _outcomes(feedback)
    assert outcome == "undelivered" and error and "500" in error
