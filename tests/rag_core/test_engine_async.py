"""`Engine.answer_async` is `Engine.answer` for an event loop: same arguments (audience included), same answer,
same cache."""

from __future__ import annotations

import asyncio
from typing import Any

from rag_core.engine import Engine
from rag_core.kv import MemoryKV
from rag_core.permissions import Audience
from rag_core.types import Candidate


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
