"""A Slack question deleted while it is answered: the answer stops, the LLM stream is closed, the log says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag_core.engine import Engine
from rag_core.feedback.models import AnswerRecord
from tests.bot.slack.conftest import llm_engine, make_bot  # noqa: F401 (fixture)
from tests.bot.slack.fake_slack import event_callback, mention
from tests.llm_server import LLMServer


async def test_deleting_the_question_while_the_llm_streams_cancels_the_answer(
    llm_engine: Engine,  # noqa: F811
    openai_server: LLMServer,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    llm = openai_server.reset(hold_after_tokens=1)
    try:
        async with make_bot(llm_engine, tmp_path, clean_redis) as bot:
            ts = "930.000100"
            await bot.post_event(event_callback(mention("How quickly must I acknowledge a page?", ts=ts)))
            assert await asyncio.to_thread(llm.wait_for, lambda b: b.open_streams >= 1, 60)
            deleted = {
                "type": "message",
                "subtype": "message_deleted",
                "channel": "C1",
                "deleted_ts": ts,
                "previous_message": {"ts": ts, "text": "<@UBOT> How quickly must I acknowledge a page?"},
                "ts": "930.000200",
                "event_ts": "930.000200",
            }
            await bot.post_event(event_callback(deleted))
            closed = await asyncio.to_thread(
                llm.wait_for, lambda b: b.closed_by_client >= 1 and b.open_streams == 0, 60
            )
            assert closed, "the LLM stream was read on after the question was deleted"
            assert bot.feedback.flush(30)
            with Session(bot.feedback.engine) as session:
                outcomes = [r.outcome for r in session.scalars(select(AnswerRecord))]
    finally:
        llm.release.set()
    assert outcomes == ["cancelled"]
