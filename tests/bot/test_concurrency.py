"""Many questions at once: every answer's LLM stream open together, a clear refusal past the limit, and an answer
cancelled mid-stream closes its stream and is logged as `cancelled` with the tokens spent so far."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversation import Conversation, Question
from bot.inflight import AnswerSlots
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback.models import AnswerRecord
from rag_core.kv import make_kv
from rag_core.types import Answer, Citation
from tests.bot.slack.conftest import bot_settings, llm_engine  # noqa: F401 (fixture)
from tests.llm_server import LLMBehaviour, LLMServer

N = 20  # well past the six threads of the default pool on two cores


class Sink:
    """Collects what one asker would see."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.streaming = (
            asyncio.Event()
        )  # set on the first streamed update (make it on the loop that uses it)

    async def started(self) -> None:
        self.events.append(("started", None))

    async def update(self, partial_text: str) -> None:
        self.events.append(("update", partial_text))
        self.streaming.set()

    async def finished(self, answer: Answer) -> str | None:
        self.events.append(("finished", answer))
        return answer.id

    async def refused(self, message: str) -> None:
        self.events.append(("refused", message))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        self.events.append(("failed", message))


def _question(i: int, message_id: str | None = None) -> Question:
    q = Question("slack", f"How quickly must I acknowledge a page? (case {i})", f"U{i}", "CGEN")
    q.message_id = message_id
    return q


def _rows(feedback: FeedbackStore) -> list[AnswerRecord]:
    with Session(feedback.engine) as session:
        return list(session.scalars(select(AnswerRecord)))


def _run_in_thread(main: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `main()` on its own event loop in a thread, so the test thread can wait on the LLM server."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_twenty_concurrent_answers_have_twenty_llm_streams_open_at_once(
    llm_engine: Engine,  # noqa: F811
    openai_server: LLMServer,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    llm: LLMBehaviour = openai_server.reset(hold_after_tokens=1)
    conversation = Conversation(llm_engine, bot_settings(tmp_path, clean_redis), make_kv(clean_redis))
    sinks = [Sink() for _ in range(N)]

    async def main() -> list[Answer | None]:
        return await asyncio.gather(*(conversation.ask(_question(i), sinks[i]) for i in range(N)))

    thread, result = _run_in_thread(main)
    try:
        all_open = llm.wait_for(lambda b: b.open_streams >= N, timeout=60)
    finally:
        llm.release.set()
        thread.join(120)
    assert all_open, f"at most {llm.max_open_streams} of {N} LLM streams were open at once"
    answers = result["value"]
    assert all(a is not None and not a.extractive and a.model == "test-model" for a in answers)
    assert all(s.events[-1][0] == "finished" for s in sinks)


def test_past_the_in_flight_limit_and_a_full_queue_a_question_is_refused_clearly(
    llm_engine: Engine,  # noqa: F811
    openai_server: LLMServer,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    llm = openai_server.reset(hold_after_tokens=1)
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    settings = bot_settings(tmp_path, clean_redis, answers_in_flight=1, answers_queued=0)
    engine = Engine(  # its own engine object: the in-flight pool is per engine
        llm_engine.settings,
        store=llm_engine.store,
        embedder=llm_engine.embedder,
        reranker=llm_engine.reranker,
        kv=llm_engine.kv,
        generator=llm_engine.generator,
    )
    conversation = Conversation(engine, settings, make_kv(clean_redis), feedback)
    held, late = Sink(), Sink()

    async def main() -> tuple[Any, Any]:
        first = asyncio.create_task(conversation.ask(_question(1), held))
        await asyncio.to_thread(llm.wait_for, lambda b: b.open_streams >= 1, 60)
        refused = await conversation.ask(_question(2), late)
        llm.release.set()
        return await first, refused

    try:
        answered, refused = asyncio.run(main())
    finally:
        llm.release.set()
        feedback.close()
    assert answered is not None and refused is None
    assert late.events[0][0] == "refused" and "as many as I can take" in late.events[0][1]
    assert ("started", None) not in late.events


def test_an_answer_cancelled_mid_stream_closes_the_llm_stream_and_is_logged_cancelled(
    llm_engine: Engine,  # noqa: F811
    openai_server: LLMServer,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    llm = openai_server.reset(hold_after_tokens=2, reply="Acknowledge pages within 5 minutes [1].")
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    conversation = Conversation(
        llm_engine, bot_settings(tmp_path, clean_redis), make_kv(clean_redis), feedback
    )

    async def main() -> Sink:
        sink = Sink()
        task = asyncio.create_task(conversation.ask(_question(7, message_id="M7"), sink))
        await asyncio.wait_for(sink.streaming.wait(), 60)  # the first tokens reached the asker
        assert conversation.cancel_question("slack", "CGEN", "M7")  # the asker deleted the message
        try:
            await task
        except asyncio.CancelledError:
            return sink
        raise AssertionError("the answer was not cancelled")

    try:
        sink = asyncio.run(main())
        assert llm.wait_for(lambda b: b.closed_by_client >= 1 and b.open_streams == 0, 60)
        rows = _rows(feedback)
    finally:
        llm.release.set()
        feedback.close()
    assert [r.outcome for r in rows] == ["cancelled"]
    assert rows[0].tokens_out >= 1 and rows[0].tokens_in > 0
    assert not any(kind == "finished" for kind, _ in sink.events)


async def test_a_flooding_platform_gives_slots_back_to_a_waiting_one_first() -> None:
    slots = AnswerSlots(4, queued=10)
    assert all([await slots.enter("slack") for _ in range(4)])  # nobody else waits: slack may use all four
    slack_waits = asyncio.create_task(slots.enter("slack"))
    discord_waits = asyncio.create_task(slots.enter("discord"))
    while slots.waiting < 2:
        await asyncio.sleep(0)  # let both reach the waiting line
    slots.leave("slack")  # slack holds 3 = its share (3 of 4) while discord waits: the slot goes to discord
    assert await asyncio.wait_for(discord_waits, 30) and not slack_waits.done()
    slots.leave("slack")
    assert await asyncio.wait_for(slack_waits, 30)
    assert slots.in_flight == 4 and slots.waiting == 0


async def test_past_the_waiting_line_a_question_is_refused_at_once() -> None:
    slots = AnswerSlots(1, queued=1)
    assert await slots.enter("api")
    waiting = asyncio.create_task(slots.enter("api"))
    while slots.waiting < 1:
        await asyncio.sleep(0)
    assert not await slots.enter("api")  # the line is full
    waiting.cancel()  # a waiter that gives up (client gone) leaves the line
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert slots.waiting == 0 and slots.in_flight == 1
