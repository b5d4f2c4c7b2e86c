"""Issue 23 on Discord: the hand-off pings only its people, a hand-off that failed is not recorded, a deleted
question is not replied to again and again, a replayed interaction is handled once, and private first says
plainly when there is no answer. The real discord.py client on simcord, the real engine, Redis and query log."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import discord
import pytest
from simcord import Env
from simcord.backend import errors as sim_errors
from simcord.builders import ChannelHandle

from bot.answer_actions import HANDOFF_FAILED
from bot.conversation import Conversation
from bot.discord.components import ESCALATE_LABEL
from rag_core.feedback import FeedbackStore
from rag_core.feedback import workflow as wf
from tests.bot.discord.conftest import RecordingEngine
from tests.bot.discord.test_team_workflow import _labels, _logged

pytestmark = pytest.mark.simcord(settle_timeout=60)

QUESTION = "How much are team dinners reimbursed per person?"
UNANSWERABLE = "What is the airspeed velocity of an unladen swallow in furlongs?"
MISSING_PERMISSIONS = 50013


def _world(env: Env) -> tuple[Any, ChannelHandle, Any]:
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    return guild, general, alice


def _bot_messages(env: Env, channel: ChannelHandle) -> list[discord.Message]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


# --- 11. the hand-off pings exactly the configured people and the asker --------------------------------------


async def test_the_hand_off_pings_only_the_helpers_and_the_asker_never_what_the_question_mentions(
    simcord_env: Env, settings: Any
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    helpers = guild.create_role("Helpers")
    engineering = guild.create_role("Engineering")
    mallory = guild.add_member(env.create_user("mallory"))
    settings.escalation = {str(general.id): [f"&{helpers.id}", "123456789012345678"]}

    loud = f"{env.bot.user.mention} <@&{engineering.id}> <@{mallory.id}> @everyone @here {QUESTION}"
    await alice.send(general, loud)
    [answer] = _bot_messages(env, general)
    await alice.click(answer, label=ESCALATE_LABEL)
    [tag] = [m for m in _bot_messages(env, general) if m.id != answer.id]
    [request] = [
        r for r in env.http_requests if r.method == "POST" and r.json and r.json.get("content") == tag.content
    ]
    allowed = request.json["allowed_mentions"]
    assert allowed.get("parse", []) == []  # nothing is pinged because the text happens to mention it
    assert sorted(map(str, allowed["users"])) == sorted(["123456789012345678", str(alice.id)])
    assert list(map(str, allowed["roles"])) == [str(helpers.id)]
    assert f"<@&{engineering.id}>" not in tag.content and f"<@{mallory.id}>" not in tag.content
    assert "@everyone" not in tag.content and "@here" not in tag.content
    assert [r.id for r in tag.role_mentions] == [helpers.id] and not tag.mention_everyone
    assert mallory.id not in [u.id for u in tag.mentions]


# --- 12. a hand-off that was not delivered is not recorded -------------------------------------------------


async def test_a_hand_off_discord_refused_is_not_recorded_and_the_next_press_tries_again(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    settings.escalation = {str(general.id): ["123456789012345678"]}
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [answer] = _bot_messages(env, general)
    [record] = _logged(feedback)

    env.inject_error(
        "POST", f"/channels/{general.id}/messages", status=403, code=MISSING_PERMISSIONS, times=1
    )
    failed = await alice.click(answer, label=ESCALATE_LABEL)
    assert failed.followups[-1].content == HANDOFF_FAILED
    assert wf.get_escalation(feedback, record.id) is None  # nobody was asked: nothing to count

    again = await alice.click(answer, label=ESCALATE_LABEL)
    assert "I've asked" in again.followups[-1].content
    assert wf.get_escalation(feedback, record.id) is not None
    assert len(_bot_messages(env, general)) == 2


# --- 14. a deleted question, a replayed interaction, private first without an answer --------------------------


class _DeletesTheQuestion:
    """The engine: the asker deletes the question (on the event loop) as soon as the answer starts streaming."""

    def __init__(self, real: Any, delete: Any) -> None:
        self.real = real
        self.delete = delete

    def answer(self, question: str, *, on_token: Any = None, **kwargs: Any) -> Any:
        answer = self.real.answer(question, **kwargs)
        deleted = False
        for word in answer.text.split(" "):
            if on_token is not None:
                on_token(word + " ")
            if not deleted:
                self.delete()
                deleted = True
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _refuse_gone_references(backend: Any) -> None:
    real_normalize = backend.normalize_message_reference

    def discord_refuses_gone_references(channel_id: int, reference: Any) -> Any:
        # Discord answers a reply to a deleted message with 400 50035 (message_reference: Unknown message).
        if reference and reference.get("fail_if_not_exists", True):
            try:
                backend.get_message(
                    int(reference.get("channel_id", channel_id)), int(reference["message_id"])
                )
            except sim_errors.BackendError:
                raise sim_errors.invalid_form_body("message_reference: Unknown message") from None
        return real_normalize(channel_id, reference)

    backend.normalize_message_reference = discord_refuses_gone_references


def _deleter(env: Env, general: Any, alice: Any, then: threading.Event | None = None) -> Any:
    """Deletes alice's question on the loop; with `then`, also waits until the bot has heard of it."""
    loop = asyncio.get_running_loop()

    def delete_question() -> None:
        done = threading.Event()

        def on_loop() -> None:
            [question] = [m for m in general.history() if m.author.id == alice.id]
            env.backend.delete_message(general.id, question.id)
            done.set()

        loop.call_soon_threadsafe(on_loop)
        assert done.wait(30)
        if then is not None:
            assert then.wait(30)

    return delete_question


def _replies(env: Env, general: Any) -> list[Any]:
    return [
        r
        for r in env.http_requests
        if r.method == "POST"
        and r.path == f"/channels/{general.id}/messages"
        and (r.json or {}).get("message_reference")
    ]


@pytest.mark.discord_settings(stream_edit_interval_s=0.0)
async def test_a_question_deleted_while_its_answer_streams_is_not_replied_to_again_and_again(
    simcord_env: Env, conversation: Conversation, engine: RecordingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the deletion is not heard as a cancellation (a missed gateway event), the answer still goes out,
    with one try at the gone question and then never again."""
    env = simcord_env
    _, general, alice = _world(env)
    _refuse_gone_references(env.backend)
    monkeypatch.setattr(conversation, "cancel_question", lambda *args: False)
    conversation.engine = _DeletesTheQuestion(engine, _deleter(env, general, alice))
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")

    assert len(_replies(env, general)) <= 1  # one try at the gone question, then never again
    [answer] = _bot_messages(env, general)
    assert "60" in answer.content or "dinner" in answer.content.lower()


@pytest.mark.discord_settings(stream_edit_interval_s=0.0)
async def test_a_question_deleted_while_its_answer_streams_cancels_the_answer(
    simcord_env: Env, conversation: Conversation, engine: RecordingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the question cancels its answer (issue 21): nothing of it is posted after the deletion."""
    env = simcord_env
    _, general, alice = _world(env)
    _refuse_gone_references(env.backend)
    heard = threading.Event()
    real_cancel = conversation.cancel_question

    def cancel_question(*args: Any) -> bool:
        cancelled = real_cancel(*args)
        heard.set()
        return cancelled

    monkeypatch.setattr(conversation, "cancel_question", cancel_question)
    conversation.engine = _DeletesTheQuestion(engine, _deleter(env, general, alice, then=heard))
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    assert heard.is_set()
    assert len(_replies(env, general)) <= 1
    assert not any("60" in m.content or "dinner" in m.content.lower() for m in _bot_messages(env, general))


async def test_a_replayed_interaction_is_handled_once(
    simcord_env: Env, feedback: FeedbackStore, caplog: pytest.LogCaptureFixture
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    await alice.send(general, f"{env.bot.user.mention} {QUESTION}")
    [answer] = _bot_messages(env, general)
    [record] = _logged(feedback)
    await alice.click(answer, label="👍")
    await alice.slash(general, "sources", question=QUESTION)
    interactions = [
        p for kind, event, p in env.backend.transcript if kind == "GATEWAY" and event == "INTERACTION_CREATE"
    ]
    assert len(interactions) == 2
    requests_before = len(env.http_requests)
    with caplog.at_level(logging.INFO):
        for payload in interactions:  # a resumed gateway session delivers them again
            env.backend.emit("INTERACTION_CREATE", payload)
        await env.settle()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
    assert len(env.http_requests) == requests_before  # no second ack (Discord would answer 40060)
    assert [v.value for v in feedback.votes(record.id)] == [1]


@pytest.mark.discord_settings(private_first=True)
async def test_private_first_without_an_answer_does_not_say_it_has_one(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    await alice.send(general, f"{env.bot.user.mention} {UNANSWERABLE}")
    [prompt] = _bot_messages(env, general)
    [record] = _logged(feedback)
    assert record.abstained
    assert "I have an answer" not in prompt.content and "couldn't find" in prompt.content
    shown = await alice.click(prompt, label=_labels(prompt)[0])
    assert shown.ephemeral and shown.response.content == record.answer_text
