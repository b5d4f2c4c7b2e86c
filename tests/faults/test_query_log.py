"""The query-log database goes away: answers are posted at once, rows wait in a bounded buffer and are written
when PostgreSQL (reached through a TCP proxy the test cuts) answers again; rows beyond the buffer are counted."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.conversation import Conversation, Question
from rag_core.feedback.metrics import QUERY_LOG_BUFFERED, QUERY_LOG_DROPPED
from rag_core.feedback.store import FeedbackStore
from rag_core.kv import MemoryKV
from rag_core.types import Answer
from tests.faults.conftest import RecordingSink, figure
from tests.faults.parts import TcpProxy, wait_until


def through_proxy(url: str) -> tuple[str, TcpProxy]:
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    return url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}"), proxy


def ask(conv: Conversation, text: str) -> RecordingSink:
    sink = RecordingSink()
    asyncio.run(conv.ask(Question("slack", text, "U1", "C1"), sink))
    return sink


def test_answers_never_wait_on_a_dead_query_log(
    small_engine,
    postgres_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proxy = through_proxy(postgres_url)
    store = FeedbackStore(url)
    conv = Conversation(small_engine, small_engine.settings, MemoryKV(), feedback=store)
    try:
        first = ask(conv, "How do I connect to the VPN?")
        assert store.get_answer(first.reply[1].id) is not None

        proxy.cut()
        with caplog.at_level(logging.INFO, logger="rag_core.feedback.store"):
            started = time.monotonic()
            sinks = [ask(conv, q) for q in ("How do I reset my VPN?", "Who pays for team dinners?")]
            per_question_s = (time.monotonic() - started) / 2
            assert [s.reply[0] for s in sinks] == ["finished", "finished"]
            assert store.buffered == 4  # two answers and the two message links, in order
            assert QUERY_LOG_BUFFERED._value.get() == 4

            proxy.restore()
            back = time.monotonic()
            written_s = wait_until(lambda: store.buffered == 0)
        for s in sinks:
            answer: Answer = s.reply[1]
            assert store.get_answer(answer.id) is not None
            assert store.answer_for_message(platform="slack", channel="C1", message_id=f"msg-{answer.id}")
        events = [r.__dict__.get("event") for r in caplog.records]
        assert events.count("query_log_down") == 1 and events.count("query_log_up") == 1
        figure("query-log DB down", "answer time while the DB is down (per question)", per_question_s)
        figure("query-log DB down", "buffered rows written after the DB answers", written_s)
        figure("query-log DB down", "DB back to buffer empty (incl. retry wait)", time.monotonic() - back)
    finally:
        store.close()
        proxy.close()


def test_rows_beyond_the_buffer_are_counted_as_dropped(postgres_url: str) -> None:
    url, proxy = through_proxy(postgres_url)
    store = FeedbackStore(url, buffer_rows=2)
    try:
        proxy.cut()
        dropped_before = QUERY_LOG_DROPPED._value.get()
        answers = [Answer(question=f"q{i}", text="a", citations=[]) for i in range(3)]
        # The three arrive before the writer takes a batch: else it could hold the first in a batch of its own,
        # try it only after `restore`, and write it although the full buffer dropped it.
        with store._buffer_lock:
            for answer in answers:
                store.log_answer(answer, platform="slack", channel="C1", user="U1")
        assert store.buffered == 2 and QUERY_LOG_DROPPED._value.get() == dropped_before + 1
        wait_until(lambda: store._down)  # the writer found the database unreachable with the rows it kept
        proxy.restore()
        wait_until(lambda: store.buffered == 0)
        assert [store.get_answer(a.id) is not None for a in answers] == [False, True, True]  # the oldest went
    finally:
        store.close()
        proxy.close()
