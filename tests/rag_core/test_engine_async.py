"""`Engine.answer_async` is `Engine.answer` for an event loop: same arguments (audience included), same answer,
same cache."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from rag_core.cancellation import AnswerCancelled
from rag_core.engine import Engine
from rag_core.generation import LLMGenerator
from rag_core.kv import MemoryKV
from rag_core.permissions import Audience
from rag_core.types import Candidate, Turn
from tests.llm_server import LLMServer


class RecordingRanks(Engine):
    """The real engine, remembering the audience each ranking was given."""

    audiences: list[Audience | None]

    def rank(self, text: str, **kwargs: Any) -> list[Candidate]:
        self.audiences.append(kwargs.get("audience"))
        return super().rank(text, **kwargs)


def _close_pool(engine: Engine) -> None:
    if engine._cpu_pool is not None:
        engine._cpu_pool.shutdown()


def _engine(small_engine: Engine) -> RecordingRanks:
    engine = RecordingRanks(
        small_engine.settings,
        store=small_engine.store,
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )
    engine.audiences = []
    return engine


def _llm_engine(small_engine: Engine, server: LLMServer, **update: Any) -> Engine:
    """The small engine's index and models, a fresh answer cache, and the scripted LLM server."""
    settings = small_engine.settings.model_copy(
        update={"openai_base_url": server.base_url, "llm_model": "test-model", **update}
    )
    return Engine(
        settings,
        store=small_engine.store,
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
        generator=LLMGenerator(settings),
    )


def test_answer_async_gives_the_sync_answer_and_forwards_the_audience(small_engine: Engine) -> None:
    engine, sync_engine = _engine(small_engine), _engine(small_engine)
    legal = Audience.of(["group:legal"])
    question = "How do I reset my VPN?"
    streamed: list[str] = []
    async_answer = asyncio.run(engine.answer_async(question, audience=legal, on_token=streamed.append))
    sync_answer = sync_engine.answer(question, audience=legal)
    assert async_answer.text == sync_answer.text and "".join(streamed) == async_answer.text
    assert [c.doc_id for c in async_answer.citations] == [c.doc_id for c in sync_answer.citations]
    assert engine.audiences == [legal]
    _close_pool(engine)  # not engine.close(): the store is the shared small engine's


def test_the_cache_key_holds_the_audience_on_both_paths(small_engine: Engine) -> None:
    engine = _engine(small_engine)
    question = "Are team dinners covered for contractors?"
    legal = Audience.of(["group:legal"])
    first = asyncio.run(engine.answer_async(question, audience=legal))
    assert not first.cache_hit
    assert engine.answer(question, audience=legal).cache_hit  # the sync path finds the async path's entry
    assert not asyncio.run(engine.answer_async(question, audience=Audience.public())).cache_hit
    assert asyncio.run(engine.answer_async(question)).cache_hit  # None is the public audience
    _close_pool(engine)  # not engine.close(): the store is the shared small engine's


@pytest.mark.parametrize("stage", ["multi_query", "rewrite"])
def test_query_side_llm_calls_wait_on_the_loop_not_in_the_answer_threads(
    small_engine: Engine, openai_server: LLMServer, stage: str
) -> None:
    """Phrasings and follow-up rewrites are LLM calls too: with two answer threads, twelve questions still have
    twelve of them open at once (parked on the threads, only two would be)."""
    llm = openai_server.reset(hold_completions=True, reply="how fast to acknowledge a page")
    engine = _llm_engine(
        small_engine,
        openai_server,
        answer_threads=2,
        multi_query=3 if stage == "multi_query" else 0,
        rewrite_follow_ups=stage == "rewrite",
    )
    history = [Turn("user", "Who is on call this week?"), Turn("assistant", "The SRE rotation [1].")]
    n = 12

    async def main() -> list[Any]:
        asks = (
            engine.answer_async(f"and how fast must they acknowledge a page? ({i})", history=history)
            for i in range(n)
        )
        return await asyncio.gather(*asks)

    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("answers", asyncio.run(main())), daemon=True)
    thread.start()
    try:
        all_open = llm.wait_for(lambda b: b.open_completions >= n, timeout=60)
    finally:
        llm.release.set()
        thread.join(120)
    assert all_open, f"at most {llm.max_open_completions} of {n} query-side LLM calls were open at once"
    answers = result["answers"]
    assert len(answers) == n and all(a.text for a in answers)
    _close_pool(engine)


def test_an_answer_cancelled_during_its_query_side_call_closes_it_and_says_so(
    small_engine: Engine, openai_server: LLMServer
) -> None:
    llm = openai_server.reset(hold_completions=True)
    engine = _llm_engine(small_engine, openai_server, multi_query=3)
    loop = asyncio.new_event_loop()
    task = loop.create_task(engine.answer_async("How quickly must I acknowledge a page?"))
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.wait([task])), daemon=True)
    thread.start()
    try:
        assert llm.wait_for(lambda b: b.open_completions == 1, timeout=60)
        loop.call_soon_threadsafe(task.cancel)
        closed = llm.wait_for(lambda b: b.open_completions == 0, timeout=60)  # not released: the client left
    finally:
        llm.release.set()
        thread.join(60)
    assert closed, "the phrasing call was still open after its answer was cancelled"
    with pytest.raises(AnswerCancelled) as cancelled:
        task.result()
    assert cancelled.value.answer.error == "cancelled" and cancelled.value.answer.text == ""
    assert not any(r["body"].get("stream") for r in llm.requests)  # no answer stream was started
    loop.close()
    _close_pool(engine)


def test_a_phrasing_call_does_not_wait_for_a_free_answer_thread(
    small_engine: Engine, openai_server: LLMServer
) -> None:
    """With the answer cache in the process, a question's phrasing call starts while every answer thread is busy
    with other answers' embedding and search (its cache lookups once queued behind them)."""
    llm = openai_server.reset(hold_completions=True, reply="page acknowledgement time")
    engine = _llm_engine(small_engine, openai_server, answer_threads=1, multi_query=3)
    started, busy = threading.Event(), threading.Event()
    loop = asyncio.new_event_loop()

    def hold() -> None:
        started.set()
        busy.wait()

    async def main() -> Any:
        blocker = asyncio.ensure_future(engine._in_cpu(hold))
        await asyncio.to_thread(started.wait)  # the only answer thread is taken
        answer = await engine.answer_async("How quickly must I acknowledge a page?")
        await blocker
        return answer

    task = loop.create_task(main())
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.wait([task])), daemon=True)
    thread.start()
    try:
        called = llm.wait_for(lambda b: b.open_completions == 1, timeout=30)
    finally:
        busy.set()
        llm.release.set()
        thread.join(60)
    assert called, "the phrasing call waited for an answer thread"
    assert task.result().text
    loop.close()
    _close_pool(engine)


def test_the_model_receives_the_messages_on_both_calls_and_both_paths(
    small_engine: Engine, openai_server: LLMServer
) -> None:
    """Messages travel in `extra_body` (past the SDK's request walk): the model still gets them, once, as built."""
    llm = openai_server.reset(script=["acknowledging a page"], reply="Acknowledge within 5 minutes [1].")
    engine = _llm_engine(small_engine, openai_server, multi_query=3)
    question = "How quickly must I acknowledge a page?"
    asyncio.run(engine.answer_async(question))
    llm.script.append("acknowledging a page")
    engine.answer(question + " (sync)")
    bodies = [r["body"] for r in llm.requests]
    assert [bool(b.get("stream")) for b in bodies] == [False, True, False, True]
    for body in bodies:
        assert "extra_body" not in body and body["model"] == "test-model"
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and roles[-1] == "user"
        assert "acknowledge a page" in body["messages"][-1]["content"]
    streamed = [b for b in bodies if b.get("stream")]
    assert all(b["stream_options"] == {"include_usage": True} for b in streamed)
    assert "[1]" in streamed[0]["messages"][0]["content"]  # the sources are in the system message
    _close_pool(engine)


def test_the_question_is_searched_while_its_phrasings_are_written(
    small_engine: Engine, openai_server: LLMServer
) -> None:
    """With multi-query, the question's own search runs during the phrasing call (not after it, queued with
    every other answer's), once; the answer cites what the blocking path cites."""
    llm = openai_server.reset(hold_completions=True, reply="acknowledging a page\npage response time")
    engine = _llm_engine(small_engine, openai_server, multi_query=2)
    question = "How quickly must I acknowledge a page?"
    searched: list[str] = []
    question_searched = threading.Event()
    retrieve = engine.retriever.retrieve

    def spy(query: str, *args: Any, **kwargs: Any) -> list[Candidate]:
        searched.append(query)
        if query == question:
            question_searched.set()
        return retrieve(query, *args, **kwargs)

    engine.retriever.retrieve = spy  # type: ignore[method-assign]
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("answer", asyncio.run(engine.answer_async(question))), daemon=True
    )
    thread.start()
    try:
        assert llm.wait_for(lambda b: b.open_completions == 1, timeout=60)
        during_the_call = question_searched.wait(30) and llm.open_completions == 1
    finally:
        llm.release.set()
        thread.join(120)
    assert during_the_call, "the question was searched only after its phrasing call"
    assert searched == [question, "acknowledging a page", "page response time"]
    engine.retriever.retrieve = retrieve  # type: ignore[method-assign]
    blocking_engine = _llm_engine(small_engine, openai_server, multi_query=2)
    blocking = blocking_engine.answer(question)  # searched after its phrasings, in this thread
    assert blocking.text and not blocking.cache_hit
    assert [c.doc_id for c in result["answer"].citations] == [c.doc_id for c in blocking.citations]
    _close_pool(engine)
