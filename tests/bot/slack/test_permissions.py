"""Restricted pages on Slack, end to end through the real Bolt app against the local Slack server: who is asking
(users.info, user groups, and their failures) and where the answer is shown decide what it may cite.

"Project Falcon" is readable by Alice alone, "Litigation hold" by the group legal (tests/bot/restricted.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.answer_actions import NOT_SHAREABLE
from bot.slack import buttons
from tests.bot.restricted import leaks
from tests.bot.slack.conftest import SlackBot, make_bot
from tests.bot.slack.fake_slack import (
    block_action,
    button_in,
    channel_message,
    direct_message,
    event_callback,
    mention,
    slash,
)

CODENAME = "What is the acquisition codename?"
LAWSUIT = "How long must we preserve emails for the Contoso lawsuit?"
PEOPLE = {"UALICE": {"email": "alice@example.com"}, "UBOB": {"email": "bob@example.com"}}


def shown(bot: SlackBot) -> str:
    """Everything the bot showed anyone (posts, edits, ephemerals, response_url posts), as one text."""
    return json.dumps([c.params for c in bot.fake.delivered()])


def final_in(bot: SlackBot, channel: str) -> Any:
    return lambda: [c for c in bot.fake.calls_to("chat.update", channel=channel) if c.params.get("blocks")]


async def ask_by_dm(bot: SlackBot, user: str, text: str, ts: str, channel: str = "D1") -> str:
    await bot.post_event(event_callback(direct_message(text, user=user, channel=channel, ts=ts)))
    [final] = await bot.fake.wait_for(final_in(bot, channel))
    return json.dumps(final.params["blocks"])


async def click(bot: SlackBot, action_id: str, value: str, **kwargs: Any) -> None:
    payload = block_action(action_id, value, response_url=bot.fake.response_url(action_id), **kwargs)
    resp, _ = await bot.post_command({"payload": json.dumps(payload)})
    assert resp.status_code == 200


@pytest.fixture
async def bot(restricted_engine: Any, tmp_path: Path, clean_redis: str) -> Any:
    async with make_bot(restricted_engine, tmp_path, clean_redis) as b:
        b.fake.users = dict(PEOPLE)
        yield b


async def test_alice_reads_her_page_in_a_dm_but_not_when_she_asks_in_a_channel(bot: SlackBot) -> None:
    dm = await ask_by_dm(bot, "UALICE", CODENAME, "100.1")
    assert "Project Falcon" in dm and "Bluebird" in dm  # the same person, privately: her page

    await bot.post_event(event_callback(mention(CODENAME, user="UALICE", channel="C1", ts="101.1")))
    [final] = await bot.fake.wait_for(final_in(bot, "C1"))
    assert leaks(json.dumps(final.params["blocks"])) == []  # everyone in C1 reads it
    assert [c.params["user"] for c in bot.fake.calls_to("users.info")] == ["UALICE"]  # the DM's, then cached


async def test_bob_never_reads_alices_page_by_dm(bot: SlackBot) -> None:
    dm = await ask_by_dm(bot, "UBOB", CODENAME, "102.1", channel="D2")
    assert leaks(dm) == [] and "Project Falcon" not in dm


async def test_ask_and_sources_answer_the_asker_alone_with_their_principals(bot: SlackBot) -> None:
    for user in ("UALICE", "UBOB"):
        for command in ("/ask", "/sources"):
            name = f"{command[1:]}-{user}"
            await bot.post_command(
                slash(command, CODENAME, user=user, channel="C1", response_url=bot.fake.response_url(name))
            )
            replies = await bot.fake.wait_for(
                lambda name=name: [
                    c for c in bot.fake.calls_to("respond", name=name) if c.params.get("blocks")
                ]
            )
            text = json.dumps(replies[-1].params)
            assert replies[-1].params.get("response_type", "ephemeral") == "ephemeral"
            if user == "UALICE":
                assert "Project Falcon" in text, command
            else:
                assert leaks(text) == [] and "Project Falcon" not in text, command


async def test_an_answer_channel_posts_only_what_everyone_may_read(
    restricted_engine: Any, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(restricted_engine, tmp_path, clean_redis, auto_answer_channels=["CANS"]) as bot:
        bot.fake.users = dict(PEOPLE)
        await bot.post_event(
            event_callback(channel_message(CODENAME, user="UALICE", channel="CANS", ts="103.1"))
        )
        [record] = await bot.fake.wait_for(lambda: _logged(bot))  # answered or abstained: logged either way
        assert all(c.doc_id != "falcon" for c in record.citations)
        assert leaks(shown(bot)) == []


def _logged(bot: SlackBot) -> list[Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session, selectinload

    from rag_core.feedback.models import AnswerRecord

    with Session(bot.feedback.engine) as session:
        stmt = select(AnswerRecord).options(selectinload(AnswerRecord.citations))
        return list(session.scalars(stmt))


async def test_sharing_a_private_answer_into_a_channel_that_may_not_read_it_is_refused(
    restricted_engine: Any, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(
        restricted_engine, tmp_path, clean_redis, private_first=True, escalation={"C1": ["UHELP"]}
    ) as bot:
        bot.fake.users = dict(PEOPLE)
        await bot.post_event(event_callback(mention(CODENAME, user="UALICE", channel="C1", ts="104.1")))
        [private] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
        assert private.params["user"] == "UALICE" and "Project Falcon" in json.dumps(private.params["blocks"])
        [record] = await bot.fake.wait_for(lambda: _logged(bot))
        assert [c.readers for c in record.citations if c.doc_id == "falcon"] == [["user:alice@example.com"]]

        share = button_in(private.params["blocks"], buttons.SHARE)
        await click(bot, buttons.SHARE, share["value"], user="UALICE", channel="C1", ephemeral=True)
        [refused] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.SHARE))
        assert (
            refused.params["text"].startswith(NOT_SHAREABLE.split("{")[0])
            and "Project Falcon" in refused.params["text"]
        )
        assert refused.params["response_type"] == "ephemeral" and not refused.params.get("delete_original")

        # The hand-off tags people in the channel: it quotes the question, never the private answer.
        escalate = button_in(private.params["blocks"], buttons.ESCALATE)
        await click(bot, buttons.ESCALATE, escalate["value"], user="UALICE", channel="C1", ephemeral=True)
        [tag] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel="C1"))
        assert "UHELP" in tag.params["text"] and leaks(json.dumps(tag.params)) == []
        assert len(bot.fake.calls_to("chat.postMessage")) == 1  # the tag, and no shared answer


async def test_sharing_is_allowed_where_an_admin_maps_the_reader_to_the_channel(
    restricted_engine: Any, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(
        restricted_engine,
        tmp_path,
        clean_redis,
        private_first=True,
        channel_principals={"CDEAL": ["user:alice@example.com"]},
    ) as bot:
        bot.fake.users = dict(PEOPLE)
        await bot.post_event(event_callback(mention(CODENAME, user="UALICE", channel="CDEAL", ts="105.1")))
        [private] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
        assert "Project Falcon" in json.dumps(private.params["blocks"])
        await bot.fake.wait_for(lambda: _logged(bot))
        share = button_in(private.params["blocks"], buttons.SHARE)
        await click(bot, buttons.SHARE, share["value"], user="UALICE", channel="CDEAL", ephemeral=True)
        [public] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel="CDEAL"))
        assert "Project Falcon" in json.dumps(public.params["blocks"])


async def test_slack_user_groups_are_groups(restricted_engine: Any, tmp_path: Path, clean_redis: str) -> None:
    async with make_bot(restricted_engine, tmp_path, clean_redis, slack_usergroups=True) as bot:
        bot.fake.users = dict(PEOPLE)
        bot.fake.usergroups = {"SLEGAL": ["UBOB"], "SOTHER": ["UALICE"]}
        bot.fake.usergroup_handles = {"SLEGAL": "legal", "SOTHER": "other"}
        assert "Litigation hold" in await ask_by_dm(bot, "UBOB", LAWSUIT, "106.1", channel="D2")
        alice = await ask_by_dm(bot, "UALICE", LAWSUIT, "107.1", channel="D1")
        assert "Litigation hold" not in alice and "contoso" not in alice.lower().replace(LAWSUIT.lower(), "")
        assert len(bot.fake.calls_to("usergroups.list")) == 1  # kept for the TTL


@pytest.mark.parametrize(
    "failure",
    ["slack error", "no email", "timeout"],
)
async def test_when_slack_cannot_say_who_asks_only_public_documents_are_used_and_it_is_logged_once(
    restricted_engine: Any, tmp_path: Path, clean_redis: str, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    async with make_bot(restricted_engine, tmp_path, clean_redis, slack_identity_timeout_s=0.5) as bot:
        bot.fake.users = dict(PEOPLE)
        if failure == "slack error":
            bot.fake.inject("users.info", status=500)
        elif failure == "no email":
            bot.fake.users["UALICE"] = {"real_name": "Alice"}
        else:
            bot.fake.inject("users.info", hang=True)
        caplog.set_level(logging.INFO)
        first = await ask_by_dm(bot, "UALICE", CODENAME, "108.1", channel="D1")
        second = await ask_by_dm(
            bot, "UALICE", "Tell me about the acquisition codename", "109.1", channel="D5"
        )
        assert leaks(first) == [] and leaks(second) == []  # answered, from public documents only
        lines = [r for r in caplog.records if getattr(r, "event", None) == "slack_identity_failed"]
        assert len(lines) == 1 and lines[0].user == "UALICE"  # type: ignore[attr-defined]
        assert "xoxb" not in caplog.text
        assert len(bot.fake.calls_to("users.info")) == 2  # not cached: the next question tries again


async def test_a_failing_user_group_list_keeps_the_askers_own_email(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.conversation import Question
    from bot.slack.identity import SlackIdentity
    from tests.bot.slack.conftest import bot_settings
    from tests.bot.slack.fake_slack import FakeSlack

    fake = await FakeSlack().start()
    try:
        fake.users = dict(PEOPLE)
        fake.usergroups, fake.usergroup_handles = {"SLEGAL": ["UALICE"]}, {"SLEGAL": "legal"}
        settings = bot_settings(tmp_path, "redis://unused", slack_usergroups=True, slack_identity_ttl_s=0)
        identity = SlackIdentity(AsyncWebClient(token="xoxb-test", base_url=fake.api_url), settings)
        fake.inject("usergroups.list", error="missing_scope", times=1)
        caplog.set_level(logging.INFO)
        asks = Question("slack", "q", "UALICE", "D1", is_dm=True)
        assert await identity.principals(asks) == {"user:alice@example.com"}
        [line] = [r for r in caplog.records if getattr(r, "event", None) == "slack_identity_failed"]
        assert line.lookup == "usergroups.list" and line.error == "missing_scope"  # type: ignore[attr-defined]
        # the next lookup (TTL 0 here) reads the groups again
        assert await identity.principals(asks) == {"user:alice@example.com", "group:legal"}
    finally:
        await fake.stop()
