"""The knowledge loop on Discord, with the real discord.py client on simcord, a real index of its own, Redis and
the query log: "I don't know", a person answers, Resolved, the answer saved from the modal, and the same question
answered with it, cited; the "Save as answer" context menu for admins; Edit / Remove by author or admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
from simcord import Env

from bot.discord.components import ESCALATE_LABEL
from bot.discord.knowledge import MENU_NAME, SAVE_LABEL
from bot.knowledge import ADMINS_ONLY, OFFER
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from tests.bot.discord.conftest import ADMIN_ROLE, RecordingEngine
from tests.bot.knowledge.conftest import own_index_engine
from tests.bot.knowledge.test_curated_source import BADGE_A, BADGE_Q

pytestmark = pytest.mark.simcord(settle_timeout=60)
Q, A = "ragbot:kq", "ragbot:ka"


@pytest.fixture
def engine(small_engine: Engine, tmp_path: Path) -> Iterator[RecordingEngine]:
    own = own_index_engine(small_engine, tmp_path / "index")
    yield RecordingEngine(own)
    own.close()


def _bot_messages(env: Env, channel: Any) -> list[discord.Message]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


async def _resolved_by_carol(env: Env, settings: Any, channel: Any, alice: Any, carol: Any) -> Any:
    """Alice asks, gets "I don't know" and calls Carol, who answers and resolves: the offer Carol sees."""
    settings.escalation = {str(channel.id): [str(carol.id)]}
    await alice.send(channel, f"{env.bot.user.mention} {BADGE_Q}")
    [answer] = _bot_messages(env, channel)
    await alice.click(answer, label=ESCALATE_LABEL)
    [tag] = [m for m in _bot_messages(env, channel) if m.id != answer.id]
    await carol.send(channel, BADGE_A)
    resolved = await carol.click(tag, label="Resolved")
    [offer] = resolved.followups
    assert offer.ephemeral and offer.content == OFFER
    return offer


async def test_a_resolved_hand_off_saved_from_the_modal_is_cited_the_next_time(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    carol = guild.add_member(env.create_user("carol"))
    offer = await _resolved_by_carol(env, settings, general, alice, carol)

    shown = await carol.click(offer.message, label=SAVE_LABEL)
    assert shown.modal is not None
    fields = {
        c["custom_id"]: c.get("value")
        for row in shown.modal["components"]
        for c in (row.get("components") or [row.get("component") or {}])
    }
    assert fields == {Q: BADGE_Q, A: BADGE_A}  # pre-filled with the human reply after the hand-off
    done = await carol.submit_modal(shown, {Q: BADGE_Q, A: BADGE_A})
    told = done.response
    assert "cited when someone asks" in told.content
    [saved] = cur.list_answers(feedback)
    assert (saved.author, saved.channel_name, saved.readers) == ("carol", "general", None)
    assert saved.thread_url.startswith("https://discord.com/channels/")

    await alice.send(general, f"{env.bot.user.mention} {BADGE_Q}")
    again = _bot_messages(env, general)[-1]
    assert "Maria at reception" in again.content
    assert "Answered by carol in #general" in str([e.to_dict() for e in again.embeds])

    # Its author removes it (only she sees the buttons; a forged click by others: the Slack tests).
    removed = await carol.click(told.message, label="Remove")
    assert "will not be cited" in removed.response.content
    assert cur.list_answers(feedback) == []
    await alice.send(general, f"{env.bot.user.mention} {BADGE_Q}")
    assert "Maria" not in _bot_messages(env, general)[-1].content


async def test_an_answer_saved_in_a_private_channel_stays_with_it(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild = env.create_guild()
    alice = guild.add_member(env.create_user("alice"))
    carol = guild.add_member(env.create_user("carol"))
    secret = guild.create_text_channel(
        "facilities",
        overwrites={
            guild.default_role: discord.PermissionOverwrite(view_channel=False),
            alice: discord.PermissionOverwrite(view_channel=True),
            carol: discord.PermissionOverwrite(view_channel=True),
            env.bot.user: discord.PermissionOverwrite(view_channel=True),
        },
    )
    offer = await _resolved_by_carol(env, settings, secret, alice, carol)
    shown = await carol.click(offer.message, label=SAVE_LABEL)
    await carol.submit_modal(shown, {Q: BADGE_Q, A: BADGE_A})
    [saved] = cur.list_answers(feedback)
    assert saved.readers == [f"group:discord:{secret.id}"]


async def test_save_as_answer_is_for_admins_and_an_admin_edits_it(
    simcord_env: Env, settings: Any, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    librarians = guild.create_role(ADMIN_ROLE)
    alice = guild.add_member(env.create_user("alice"))
    lib = guild.add_member(env.create_user("lib"), roles=[librarians])
    message = await alice.send(general, BADGE_A)

    refused = await alice.context_menu(general, MENU_NAME, message)
    assert refused.response.content == ADMINS_ONLY and refused.modal is None
    shown = await lib.context_menu(general, MENU_NAME, message)
    done = await lib.submit_modal(shown, {Q: BADGE_Q, A: BADGE_A})
    told = done.response
    [saved] = cur.list_answers(feedback)
    assert saved.question == BADGE_Q and saved.author == "lib"

    editing = await lib.click(told.message, label="Edit")
    await lib.submit_modal(editing, {Q: BADGE_Q, A: "Parking badges: ask Maria, second floor."})
    assert cur.get_answer(feedback, saved.id).answer == "Parking badges: ask Maria, second floor."
