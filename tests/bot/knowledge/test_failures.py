"""Failure first: the index or the query log down while saving, Slack refusing the form. What the person sees,
what is logged, what is kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.conversation import Conversation
from bot.knowledge import Knowledge
from bot.slack import knowledge as sk
from rag_core.engine import Engine
from rag_core.errors import StoreUnavailable
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from rag_core.kv import MemoryKV
from tests.bot.api.conftest import ADMIN, running_api
from tests.bot.knowledge.test_curated_source import BADGE_A, BADGE_Q
from tests.bot.knowledge.test_slack_flow import bot, click, post, resolve_with_a_human_answer  # noqa: F401
from tests.bot.slack.conftest import SlackBot
from tests.bot.slack.fake_slack import view_submission


class _DownWriter:
    def document_versions(self, source: str) -> dict[str, str]:
        raise StoreUnavailable("qdrant is down")


class _IndexDown:
    """The real engine, but its index cannot be written (a Qdrant server that went away)."""

    def __init__(self, real: Engine) -> None:
        self.real = real
        self.down = True

    def index_writer(self) -> Any:
        return _DownWriter() if self.down else self.real.index_writer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_save_while_the_index_is_down_is_kept_and_indexed_by_the_next_sync(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        flaky = _IndexDown(engine)
        conversation = Conversation(flaky, engine.settings, MemoryKV(), store)  # type: ignore[arg-type]
        knowledge = Knowledge(conversation)
        with caplog.at_level(logging.WARNING):
            saved = await knowledge.save(BADGE_Q, BADGE_A, author="Dana", author_id="U1", platform="slack")
        assert not saved.indexed and "after the next sync" in saved.message
        assert [a.question for a in cur.list_answers(store)] == [BADGE_Q]  # kept
        assert any(getattr(r, "event", "") == "curated_sync_failed" for r in caplog.records)
        assert engine.answer(BADGE_Q).abstained

        flaky.down = False
        assert await knowledge.sync()
        assert not engine.answer(BADGE_Q).abstained
    finally:
        store.close()


def test_the_api_says_503_when_the_query_log_fails(engine: Engine, tmp_path: Path, clean_redis: str) -> None:
    with running_api(engine, tmp_path, clean_redis) as api:
        with api.feedback.engine.begin() as conn:
            conn.execute(text("DROP TABLE curated_answers"))
        with api.client(ADMIN) as admin:
            resp = admin.post("/v1/knowledge", json={"question": BADGE_Q, "answer": BADGE_A, "by": "Dana"})
            assert resp.status_code == 503 and resp.json()["detail"].startswith(
                "the query log is unavailable"
            )
            assert admin.get("/v1/knowledge").status_code == 503


async def test_slack_refusing_the_form_is_said_to_the_clicker(bot: SlackBot) -> None:  # noqa: F811
    offer = await resolve_with_a_human_answer(bot, "1400.1")
    bot.fake.inject("views.open", error="expired_trigger_id")
    save = next(
        e for b in offer["blocks"] for e in b.get("elements", []) if e.get("action_id") == sk.SAVE_OFFER
    )
    await click(bot, sk.SAVE_OFFER, save["value"], user="UHELP", ephemeral=True)
    [said] = await bot.fake.wait_for(lambda: bot.fake.calls_to("respond", name=sk.SAVE_OFFER))
    assert said.params["text"] == sk.FORM_FAILED


async def test_a_save_the_query_log_refuses_is_said_to_the_saver(bot: SlackBot) -> None:  # noqa: F811
    with bot.feedback.engine.begin() as conn:
        conn.execute(text("DROP TABLE curated_answers"))
    meta = json.dumps({"c": "C1", "t": "1500.1", "n": "c1", "p": False, "u": ""})
    values = {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}
    await post(bot, view_submission(sk.SAVE_VIEW, meta, values, user="UHELP"))
    [told] = await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postEphemeral", user="UHELP"))
    assert told.params["text"] == sk.SAVE_FAILED and told.params["thread_ts"] == "1500.1"


async def test_slack_refusing_the_thread_or_its_link_leaves_the_form_to_fill_in(bot: SlackBot) -> None:  # noqa: F811
    offer = await resolve_with_a_human_answer(bot, "1600.1")
    bot.fake.inject("conversations.replies", error="ratelimited")
    bot.fake.inject("chat.getPermalink", error="message_not_found")
    save = next(
        e for b in offer["blocks"] for e in b.get("elements", []) if e.get("action_id") == sk.SAVE_OFFER
    )
    await click(bot, sk.SAVE_OFFER, save["value"], user="UHELP", ephemeral=True)
    [opened] = await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    fields = {
        b["block_id"]: b["element"].get("initial_value")
        for b in opened.params["view"]["blocks"]
        if b["type"] == "input"
    }
    assert fields == {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: None}  # the person writes the answer
    values = {sk.QUESTION_BLOCK: BADGE_Q, sk.ANSWER_BLOCK: BADGE_A}
    await post(
        bot, view_submission(sk.SAVE_VIEW, opened.params["view"]["private_metadata"], values, user="UHELP")
    )
    await bot.fake.wait_for(lambda: cur.list_answers(bot.feedback))
    assert cur.list_answers(bot.feedback)[0].thread_url == ""


async def test_a_resolve_whose_offer_slack_refuses_is_still_resolved(bot: SlackBot) -> None:  # noqa: F811
    bot.fake.inject("chat.postEphemeral", error="user_not_in_channel", user="UHELP")
    await resolve_with_a_human_answer(bot, "1700.1", offered=False)  # the offer was refused...
    resolved = [c for c in bot.fake.calls_to("chat.update") if "Resolved by <@UHELP>" in json.dumps(c.params)]
    assert resolved  # ...but the hand-off was closed and shown as resolved
