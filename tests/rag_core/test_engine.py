"""The engine end to end on tiny documents: abstention, generation, citations, failure paths, cache."""

from __future__ import annotations

import logging

import pytest

from rag_core.engine import ABSTAIN_TEXT, Engine
from rag_core.errors import UserError
from rag_core.generation import LLMGenerator
from rag_core.kv import MemoryKV, RedisKV
from rag_core.types import Document, Turn
from tests.conftest import make_settings, small_documents


def engine_like(small_engine, tmp_path, *, generator_url=None, kv=None, **overrides) -> Engine:
    """A new Engine on a fresh store holding the small documents, reusing small_engine's loaded models."""
    from rag_core.store import open_store

    # these tests count generation requests; multi-query has its own tests in test_answer_quality
    overrides.setdefault("multi_query", 0)
    settings = make_settings(tmp_path, openai_base_url=generator_url, **overrides)
    engine = Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=kv or MemoryKV(),
        generator=LLMGenerator(settings) if generator_url else None,
    )
    with engine.index_writer().begin() as tx:
        for doc in small_documents():
            tx.upsert(doc, "v1")
    return engine


def test_extractive_answer_cites_the_right_source_without_an_llm(small_engine):
    answer = small_engine.answer("How much is reimbursed for a team dinner?")
    assert not answer.abstained and answer.extractive
    assert "no AI summary" in answer.text.splitlines()[0]
    assert "$60 per person" in answer.text
    assert answer.citations[0].title == "Expenses policy"
    assert answer.citations[0].url == "https://drive.example.com/expenses"
    assert "[1]" in answer.text
    assert set(answer.timings_ms) >= {"retrieve", "rerank", "threshold", "pack", "generate", "total"}


def test_unanswerable_question_abstains_without_calling_the_llm(small_engine, tmp_path, openai_server):
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    answer = engine.answer("What is the capital city of Mongolia?")
    assert answer.abstained
    assert answer.text.startswith(ABSTAIN_TEXT)
    assert openai_server.behaviour.requests == []
    assert 0 < len(answer.citations) <= 3  # the closest sources are still shown
    engine.close()


def test_allowed_sources_are_never_exceeded(small_engine):
    answer = small_engine.answer(
        "What is the 2027 headcount budget?", allowed_sources=["eng-wiki", "people-drive"]
    )
    assert all(c.source in {"eng-wiki", "people-drive"} for c in answer.citations)
    allowed = small_engine.answer("What is the 2027 headcount budget?", allowed_sources=["finance-private"])
    assert allowed.citations[0].title == "Budget 2027" and not allowed.abstained
    assert small_engine.answer("What is the 2027 headcount budget?", allowed_sources=[]).abstained


def test_streams_llm_answer_and_strips_citations_to_unknown_sources(small_engine, tmp_path, openai_server):
    openai_server.reset(reply="Team dinners are covered up to $60 per person [1] but see [7] and [1, 9].")
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    tokens: list[str] = []
    answer = engine.answer("What is the team dinner limit?", on_token=tokens.append)
    assert len(tokens) > 5 and "".join(tokens).startswith("Team dinners are covered")
    assert answer.text == "Team dinners are covered up to $60 per person [1] but see and [1]."
    assert [c.n for c in answer.citations] == [1]
    assert not answer.extractive and answer.error is None
    assert answer.tokens_in == 321 and answer.tokens_out > 0
    assert answer.cost_usd == pytest.approx((321 * 0.15 + answer.tokens_out * 0.60) / 1e6, rel=1e-3)
    request = openai_server.behaviour.requests[-1]["body"]
    assert request["stream"] is True and request["model"] == "gpt-4o-mini"
    system = request["messages"][0]["content"]
    assert "[1] Expenses policy" in system and "https://drive.example.com/expenses" in system
    assert "ONLY the numbered sources" in system
    engine.close()


def test_transient_llm_errors_are_retried(small_engine, tmp_path, openai_server):
    openai_server.reset(fail_first=1, reply="Use WireGuard [1].")
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    answer = engine.answer("How do I connect to the VPN?")
    assert answer.text == "Use WireGuard [1]." and len(openai_server.behaviour.requests) == 2
    engine.close()


@pytest.mark.parametrize("failure", [{"status": 500}, {"break_after_tokens": 2}, {"status": 401}])
def test_llm_failure_falls_back_to_quoted_passages(small_engine, tmp_path, openai_server, failure, caplog):
    openai_server.reset(reply="WireGuard is the client [1] you need.", **failure)
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url, llm_max_retries=1)
    with caplog.at_level(logging.WARNING):
        answer = engine.answer("How do I reset my VPN?")
    assert answer.extractive and answer.error
    assert "the language model failed" in answer.text.splitlines()[0]
    assert "revoke the old key" in answer.text and answer.citations[0].title == "VPN how-to"
    assert any(r.__dict__.get("event") == "llm_error" for r in caplog.records)
    # a failed answer is not cached: the next ask tries the LLM again
    openai_server.reset(reply="Revoke the key [1].")
    assert engine.answer("How do I reset my VPN?").text == "Revoke the key [1]."
    engine.close()


def test_cost_budget_limits_the_context(small_engine, tmp_path, openai_server):
    engine = engine_like(
        small_engine,
        tmp_path,
        generator_url=openai_server.base_url,
        max_cost_per_question_usd=0.000_3,
        llm_max_output_tokens=100,
    )
    engine.answer("How does paging and escalation work when on call?")
    system = openai_server.behaviour.requests[-1]["body"]["messages"][0]["content"]
    # (0.0003 - 100 * 0.60e-6) / 0.15e-6 = 1600 tokens minus overhead: room for sources, bounded
    from rag_core.tokens import count_tokens

    assert count_tokens(system) < 1600
    engine.close()


def test_empty_question_is_a_user_error(small_engine):
    with pytest.raises(UserError, match="empty"):
        small_engine.answer("   ")


def test_follow_up_uses_thread_history(small_engine):
    history = [
        Turn("user", "What is the team dinner reimbursement limit?"),
        Turn("assistant", "Up to $60 [1]."),
    ]
    answer = small_engine.answer("and for contractors?", history=history)
    assert answer.citations[0].title == "Expenses policy"
    assert "Contractors" in answer.text or "contractors" in answer.text


def test_cache_hit_after_repeat_and_miss_after_sync(small_engine, tmp_path):
    engine = engine_like(small_engine, tmp_path)
    first = engine.answer("How do I deploy to production?")
    again = engine.answer("how do I deploy to production")
    assert not first.cache_hit and again.cache_hit and again.text == first.text and again.id != first.id
    with engine.index_writer().begin() as tx:
        tx.upsert(
            Document(
                id="deploy",
                source="eng-wiki",
                title="Deploying to production",
                text="# Deploy steps\nDeploys now go through the Spinnaker pipeline, not make.",
            ),
            "v2",
        )
    after = engine.answer("How do I deploy to production?")
    assert not after.cache_hit and "Spinnaker" in after.text
    engine.close()


def test_cache_in_real_redis_is_shared_between_engines(small_engine, tmp_path, clean_redis):
    one = engine_like(small_engine, tmp_path / "a", kv=RedisKV(clean_redis))
    two = engine_like(small_engine, tmp_path / "b", kv=RedisKV(clean_redis))
    one.answer("Who gets paged when the primary does not acknowledge?")
    assert two.answer("Who gets paged when the primary does not acknowledge?").cache_hit
    one.close()
    two.close()


def test_redis_down_logs_once_and_still_answers(small_engine, tmp_path, caplog):
    from tests.conftest import _free_port

    kv = RedisKV(f"redis://127.0.0.1:{_free_port()}/0")
    engine = engine_like(small_engine, tmp_path, kv=kv)
    with caplog.at_level(logging.WARNING):
        a = engine.answer("How do I reset my VPN?")
        b = engine.answer("How do I reset my VPN?")
    assert not a.abstained and b.cache_hit  # the in-process fallback still caches
    assert len([r for r in caplog.records if r.__dict__.get("event") == "redis_down"]) == 1
    engine.close()


def test_answer_overrides_for_experiments(small_engine):
    base = small_engine.answer("How do I connect to the VPN?")
    narrow = small_engine.answer(
        "How do I connect to the VPN?", overrides={"top_k": 1, "use_reranker": False}
    )
    assert len(narrow.citations) == 1 and not narrow.cache_hit and len(base.citations) >= 1
    with pytest.raises(ValueError, match="unknown answer overrides"):
        small_engine.answer("How do I connect to the VPN?", overrides={"temperature": 2})


def test_sources_lists_without_generating(small_engine):
    citations = small_engine.sources("reset vpn key")
    assert citations[0].title == "VPN how-to" and citations[0].heading_path == ["Resetting"]
    assert citations[0].score > 0.3 and "revoke the old key" in citations[0].snippet


def test_sources_and_answer_choose_the_threshold_the_same_way(small_engine, tmp_path):
    """With reranking off both use `min_relevance`, not the (here very strict) threshold of the loaded reranker."""
    from rag_core.rerank import FusionReranker
    from rag_core.threshold import min_relevance

    engine = engine_like(small_engine, tmp_path, use_reranker=False, min_relevance=0.0, top_k=5)
    engine.reranker = FusionReranker(0.5, min_relevance=0.99)
    assert min_relevance(engine._active_reranker(engine.settings), {}) == 0.0
    assert len(engine.sources("vpn", k=5)) > 3  # all above 0.0, not the three-closest fallback
    assert not engine.answer("How do I reset my VPN key?").abstained
    engine.settings = engine.settings.model_copy(update={"use_reranker": True})
    assert len(engine.sources("vpn", k=5)) <= 3  # now 0.99 applies: nothing passes, the closest are shown
    engine.close()
