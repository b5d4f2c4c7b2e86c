"""Restricted pages on Discord, end to end: the real discord.py client on simcord, the real engine with "Project
Falcon" (Alice alone) and "Litigation hold" (group legal), Redis and the query log. Discord shares no email:
`RAG_DISCORD_PRINCIPALS` maps user ids and role ids to principals."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from simcord import Env
from simcord.builders import ChannelHandle

from tests.bot.discord.conftest import RecordingEngine
from tests.bot.restricted import ALICE, LEGAL, leaks

pytestmark = pytest.mark.simcord(settle_timeout=60)

CODENAME = "What is the acquisition codename?"
LAWSUIT = "How long must we preserve emails for the Contoso lawsuit?"


@pytest.fixture
def engine(restricted_engine: Any) -> RecordingEngine:
    return RecordingEngine(restricted_engine)


def _text(message: Any) -> str:
    """A message's content and embeds as one text."""
    embeds = " ".join(f"{e.title} {e.description}" for e in getattr(message, "embeds", []) or [])
    return f"{message.content} {embeds}"


def _bot_messages(env: Env, channel: Any) -> list[discord.Message]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


def _world(env: Env, settings: Any) -> tuple[Any, ChannelHandle, Any, Any]:
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    bob = guild.add_member(env.create_user("bob"))
    settings.discord_principals = {str(alice.id): [ALICE]}
    return guild, general, alice, bob


async def test_alice_reads_her_page_by_dm_but_not_in_a_channel(simcord_env: Env, settings: Any) -> None:
    env = simcord_env
    _, general, alice, bob = _world(env, settings)

    await alice.send(general, f"{env.bot.user.mention} {CODENAME}")
    [in_channel] = _bot_messages(env, general)
    assert leaks(_text(in_channel)) == [] and "Project Falcon" not in _text(in_channel)

    await alice.send_dm(CODENAME)
    [in_dm] = _bot_messages(env, alice.user.dm_channel)
    assert "Project Falcon" in _text(in_dm)

    await bob.send_dm(CODENAME)
    [bobs] = _bot_messages(env, bob.user.dm_channel)
    assert leaks(_text(bobs)) == []


async def test_slash_commands_answer_the_asker_alone_with_their_principals(
    simcord_env: Env, settings: Any
) -> None:
    env = simcord_env
    _, general, alice, bob = _world(env, settings)
    for command in ("ask", "sources"):
        mine = await alice.slash(general, command, question=CODENAME)
        assert mine.ephemeral and "Project Falcon" in " ".join(
            _text(p) for p in [mine.response, *mine.followups]
        )
        theirs = await bob.slash(general, command, question=CODENAME)
        assert leaks(" ".join(_text(p) for p in [theirs.response, *theirs.followups])) == []


async def test_a_role_maps_to_a_group(simcord_env: Env, settings: Any) -> None:
    env = simcord_env
    guild, general, _alice, _bob = _world(env, settings)
    counsel = guild.create_role("Counsel")
    carol = guild.add_member(env.create_user("carol"), roles=[counsel])
    settings.discord_principals = {f"&{counsel.id}": [LEGAL]}
    result = await carol.slash(general, "sources", question=LAWSUIT)
    assert "Litigation hold" in _text(result.response)


async def test_sharing_a_private_answer_the_channel_may_not_read_is_refused(
    simcord_env: Env, settings: Any
) -> None:
    env = simcord_env
    _, general, alice, _bob = _world(env, settings)
    settings.private_first = True

    await alice.send(general, f"{env.bot.user.mention} {CODENAME}")
    [prompt] = _bot_messages(env, general)
    assert leaks(_text(prompt)) == []
    shown = await alice.click(prompt, label="Show answer")
    assert shown.ephemeral and "Project Falcon" in _text(shown.response)

    refused = await alice.click(shown.response.message, label="Share in thread")
    assert refused.ephemeral and "can't share this answer here" in refused.response.content
    assert [m.id for m in _bot_messages(env, general)] == [prompt.id]  # nothing else was posted

    # The hand-off tags people in the channel: the question, never the private answer.
    settings.escalation = {str(general.id): ["123456789012345678"]}
    await alice.click(shown.response.message, label="Get help from a person")
    [tag] = [m for m in _bot_messages(env, general) if m.id != prompt.id]
    assert "123456789012345678" in tag.content and CODENAME in tag.content
    assert leaks(_text(tag).replace(CODENAME, "")) == []
