"""Issue 23 on Slack: questions with a file attached, Share clicked twice, malformed clicks, a resolved hand-off
asked again, mentions in a quoted hand-off, and the docs of what an answer channel logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.answer_actions import ALREADY_SHARED
from bot.slack import buttons
from bot.slack.subtypes import ATTACHMENT_NOT_READ, FILE_ONLY
from rag_core.engine import Engine
from rag_core.feedback import workflow as wf
from rag_core.feedback.models import AnswerRecord
from tests.bot.slack.conftest import SlackBot, make_bot
from tests.bot.slack.fake_slack import (
    block_action,
    button_in,
    channel_message,
    direct_message,
    event_callback,
    mention,
)

QUESTION = "How do I reset my VPN?"
ANSWERS = "CANS"
FILES = [{"id": "F1", "name": "screenshot.png", "mimetype": "image/png", "filetype": "png"}]


def _logged(bot: SlackBot) -> list[AnswerRecord]:
    with Session(bot.feedback.engine) as session:
        return list(session.scalars(select(AnswerRecord).order_by(AnswerRecord.created_at)))


def _with_file(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "subtype": "file_share", "files": FILES, "upload": False}


async def click(bot: SlackBot, action_id: str, value: str, **kwargs: Any) -> None:
    payload = block_action(action_id, value, response_url=bot.fake.response_url(action_id), **kwargs)
    resp, _ = await bot.post_command({"payload": json.dumps(payload)})
    assert resp.status_code == 200


# --- 1. a question with a file attached -------------------------------------------------------------------------


async def test_a_dm_question_with_a_file_is_answered_from_its_text_and_says_the_file_was_not_read(
    bot: SlackBot,
) -> None:
    await bot.post_event(event_callback(_with_file(direct_message(QUESTION, ts="900.1"))))
    [final] = await bot.fake.wait_for(
        lambda: [c for c in bot.fake.calls_to("chat.update", channel="D1") if c.params.get("blocks")]
    )
    assert "VPN how-to" in json.dumps(final.params["blocks"])
    assert ATTACHMENT_NOT_READ in json.dumps(final.params["blocks"])
    [record] = await bot.fake.wait_for(lambda: _logged(bot))
    assert record.question == QUESTION and record.outcome == "answered"


async def test_a_dm_with_only_a_file_gets_a_short_reply(bot: SlackBot) -> None:
    await bot.post_event(event_callback(_with_file(direct_message("", ts="900.2"))))
    [reply] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel="D1"))
    assert reply.params["text"] == FILE_ONLY
    assert not _logged(bot)


async def test_an_answer_channel_question_with_a_file_and_a_thread_broadcast_dm_are_answered(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, auto_answer_channels=[ANSWERS]) as bot:
        await bot.post_event(
            event_callback(_with_file(channel_message(QUESTION, channel=ANSWERS, ts="901.1")))
        )
        [post] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage", channel=ANSWERS))
        assert post.params["thread_ts"] == "901.1" and ATTACHMENT_NOT_READ in json.dumps(
            post.params["blocks"]
        )
        # A file with no text in an answer channel is chatter: nothing is posted there.
        await bot.post_event(event_callback(_with_file(channel_message("", channel=ANSWERS, ts="901.2"))))
        broadcast = {
            **direct_message(QUESTION, ts="901.4"),
            "subtype": "thread_broadcast",
            "thread_ts": "901.3",
        }
        await bot.post_event(event_callback(broadcast))
        await bot.fake.wait_for(lambda: len(_logged(bot)) == 2)
        assert not bot.fake.calls_to("chat.postMessage", thread_ts="901.2")


async def test_edits_deletions_joins_and_bot_messages_stay_ignored(bot: SlackBot) -> None:
    ignored = [
        {**direct_message(QUESTION, ts="902.1"), "subtype": subtype}
        for subtype in ("message_changed", "message_deleted", "channel_join", "bot_message", "file_comment")
    ]
    for event in ignored:
        resp, _ = await bot.post_event(event_callback(event))
        assert resp.status_code == 200
    await bot.post_event(event_callback(direct_message(QUESTION, ts="902.2")))
    [record] = await bot.fake.wait_for(lambda: _logged(bot))
    assert record.question == QUESTION
    assert len(bot.fake.calls_to("chat.postMessage")) == 1


# --- 2. Share clicked twice --------------------------------------------------------------------------------------


async def test_share_clicked_twice_posts_one_public_copy(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, private_first=True) as bot:
        await bot.post_event(event_callback(mention(QUESTION, ts="910.1", user="U7")))
        [ephemeral] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral"))
        share = button_in(ephemeral.params["blocks"], buttons.SHARE)
        await bot.fake.wait_for(lambda: _logged(bot))
        await asyncio.gather(
            *(click(bot, buttons.SHARE, share["value"], user="U7", ephemeral=True) for _ in range(2))
        )
        # The first click deletes the private copy after posting; the second deletes it and says why.
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("respond", name=buttons.SHARE)) >= 3)
        assert len(bot.fake.calls_to("chat.postMessage")) == 1
        assert [
            c
            for c in bot.fake.calls_to("respond", name=buttons.SHARE)
            if c.params.get("text") == ALREADY_SHARED
        ]


# --- 3. malformed signed clicks ---------------------------------------------------------------------------------


async def test_a_signed_click_without_actions_gets_a_400_json_error_and_one_log_line(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    payload = block_action(buttons.SHARE, "{}", response_url=bot.fake.response_url("x"))
    for actions in ([], [None], "nope"):
        payload["actions"] = actions
        with caplog.at_level(logging.INFO):
            caplog.clear()
            resp, _ = await bot.post_command({"payload": json.dumps(payload)})
        assert resp.status_code == 400 and "error" in resp.json()
        assert not [r for r in caplog.records if r.exc_info]
        assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == [
            "slack request rejected"
        ]


@pytest.mark.parametrize(
    "value",
    ['{"a":123}', '{"a":["x"]}', '{"a":{"b":1}}', "[1,2]", "not json", '{"t":5}'],
)
async def test_a_button_value_of_the_wrong_shape_says_the_button_is_out_of_date(
    bot: SlackBot, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    for action_id in (buttons.SHARE, buttons.VOTE_UP, buttons.ESCALATE, buttons.RESOLVE):
        with caplog.at_level(logging.INFO):
            await click(bot, action_id, value, message={"ts": "1.1"})
            [said] = await bot.fake.wait_for(lambda a=action_id: bot.fake.calls_to("respond", name=a))
        assert said.params["response_type"] == "ephemeral" and "out of date" in said.params["text"]
    assert not [r for r in caplog.records if r.exc_info], [r.message for r in caplog.records if r.exc_info]
    assert not bot.fake.calls_to("chat.postMessage")


async def test_a_wrongly_typed_value_in_the_payload_itself_is_a_polite_reply(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    payload = block_action(buttons.SHARE, "{}", response_url=bot.fake.response_url("typed"))
    payload["actions"][0]["value"] = {"a": "x"}  # not a string at all
    with caplog.at_level(logging.INFO):
        resp, _ = await bot.post_command({"payload": json.dumps(payload)})
        assert resp.status_code == 200
        [said] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="typed"))
    assert "out of date" in said.params["text"]
    assert not [r for r in caplog.records if r.exc_info]


# --- 4. Get help after the hand-off was resolved ----------------------------------------------------------------


async def test_get_help_after_the_hand_off_was_resolved_says_so_and_offers_a_new_one(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(small_engine, tmp_path, clean_redis, escalation={"C1": ["UHELP"]}) as bot:
        await bot.post_event(event_callback(mention(QUESTION, ts="920.1")))
        [final] = await bot.fake.wait_for(
            lambda: [c for c in bot.fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")]
        )
        answer_id = await bot.fake.wait_for(
            lambda: bot.feedback.answer_for_message(
                platform="slack", channel="C1", message_id=final.params["ts"]
            )
        )
        escalate = button_in(final.params["blocks"], buttons.ESCALATE)
        message = {"ts": final.params["ts"], "thread_ts": "920.1"}
        await click(bot, buttons.ESCALATE, escalate["value"], message=message)
        await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.ESCALATE))
        assert wf.resolve_escalation(bot.feedback, answer_id, user="UHELP")

        await click(bot, buttons.ESCALATE, escalate["value"], message=message)
        said = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=buttons.ESCALATE)[1:])
        assert "resolved" in said[0].params["text"] and "asked already" not in said[0].params["text"]
        again = button_in(said[0].params["blocks"], buttons.ESCALATE_AGAIN)

        await click(bot, buttons.ESCALATE_AGAIN, again["value"], message=message)
        tags = await bot.fake.wait_for(
            lambda: [c for c in bot.fake.calls_to("chat.postMessage") if "<@UHELP>" in c.params["text"]][1:]
        )
        assert len(tags) == 1
        record = wf.get_escalation(bot.feedback, answer_id)
        assert record is not None and record.resolved_at is None


# --- 11. the hand-off pings only the configured people and the asker -----------------------------------------


async def test_the_hand_off_quotes_the_question_without_pinging_anyone_it_mentions(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    loud = "<!subteam^SENG|@engineering> <!channel> <!here> <!everyone> <@U999> how do I reset my VPN?"
    async with make_bot(small_engine, tmp_path, clean_redis, escalation={"C1": ["UHELP", "SHELP"]}) as bot:
        await bot.post_event(event_callback(mention(loud, ts="930.1")))
        [final] = await bot.fake.wait_for(
            lambda: [c for c in bot.fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")]
        )
        escalate = button_in(final.params["blocks"], buttons.ESCALATE)
        await bot.fake.wait_for(lambda: _logged(bot))
        await click(bot, buttons.ESCALATE, escalate["value"], message={"ts": final.params["ts"]})
        [tag] = await bot.fake.wait_for(
            lambda: [c for c in bot.fake.calls_to("chat.postMessage") if "UHELP" in c.params["text"]]
        )
        for text in (tag.params["text"], json.dumps(tag.params["blocks"])):
            pings = set(re.findall(r"<[@!][^>|]*", text.replace('\\"', '"')))
            assert pings == {"<@UHELP", "<!subteam^SHELP", "<@U1"}, pings
        assert not tag.params.get("link_names") and tag.params.get("parse") in (None, "none")


# --- 5. the docs say what an answer channel logs ---------------------------------------------------------------


async def test_an_answer_channel_logs_a_rate_limited_question_as_the_docs_say(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    async with make_bot(
        small_engine, tmp_path, clean_redis, auto_answer_channels=[ANSWERS], rate_limit_per_minute=1
    ) as bot:
        await bot.post_event(event_callback(channel_message(QUESTION, channel=ANSWERS, ts="940.1")))
        await bot.fake.wait_for(lambda: _logged(bot))
        await bot.post_event(
            event_callback(channel_message(QUESTION, channel=ANSWERS, ts="940.2", user="U1"))
        )
        records = await bot.fake.wait_for(lambda: _logged(bot)[1:])
    outcome = records[0].outcome
    docs = " ".join((Path(__file__).parents[3] / "docs" / "slack.md").read_text().split())
    assert f"a rate-limit refusal is logged as `{outcome}`" in docs


async def test_a_click_without_actions_over_socket_mode_is_acked_and_dropped_with_one_line(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.slack.app import socket_handler

    handler = socket_handler(bot.app, "xapp-test")
    await handler.connect_async()
    await bot.fake.wait_connected()
    try:
        payload = block_action(buttons.SHARE, "{}", response_url=bot.fake.response_url("sm"))
        payload["actions"] = []
        with caplog.at_level(logging.INFO):
            envelope = await bot.fake.send_envelope("interactive", payload)
            await bot.fake.wait_for(lambda: envelope.acked_at)
            # A well-formed click after it is still handled: the bad one was dropped, not queued.
            good = block_action(buttons.SHARE, '{"a":"gone"}', response_url=bot.fake.response_url("ok"))
            await bot.fake.send_envelope("interactive", good)
            await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name="ok"))
        assert not [r for r in caplog.records if r.exc_info]
        assert [
            r.getMessage() for r in caplog.records if getattr(r, "event", None) == "slack_request_rejected"
        ] == ["slack request rejected"]
        assert not bot.fake.calls_to("respond", name="sm")
    finally:
        await handler.close_async()
