"""Query side and grounding with an LLM (the local OpenAI-compatible server, scripted replies): follow-up
rewriting, multi-query fusion, the no-answer sentinel, unsupported citations, and what every call costs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.conversation import Conversation, Question
from rag_core.engine import ABSTAIN_TEXT, Engine
from rag_core.feedback.outcome import outcome_of
from rag_core.grounding import NO_ANSWER, check_citations, is_no_answer
from rag_core.kv import MemoryKV
from rag_core.multi_query import fuse_candidates
from rag_core.packing import token_budget
from rag_core.types import Answer, Candidate, Chunk, Citation, Turn
from tests.conftest import make_settings
from tests.llm_server import LLMServer
from tests.rag_core.test_engine import engine_like

DINNER_HISTORY = [
    Turn("user", "What is the team dinner reimbursement limit?"),
    Turn("assistant", "Up to $60 per person [1]."),
]
# gpt-4o-mini prices: 0.15 / 0.60 USD per million tokens; the server's usage: 100 + 20 per short call,
# 321 + one per word for the streamed answer.
SHORT_CALL_USD = (100 * 0.15 + 20 * 0.60) / 1e6


def recording_searches(engine: Engine) -> list[str]:
    """The query text of every hybrid search the engine runs (the real search still runs)."""
    searched: list[str] = []
    real = engine.retriever.retrieve

    def retrieve(query: str, *args: Any, **kwargs: Any) -> list[Candidate]:
        searched.append(query)
        return real(query, *args, **kwargs)

    engine.retriever.retrieve = retrieve  # type: ignore[method-assign]
    return searched


def short_calls(server: LLMServer) -> list[dict[str, Any]]:
    return [r["body"] for r in server.behaviour.requests if not r["body"].get("stream")]


def test_rewrite_happens_only_for_follow_ups_and_is_what_gets_searched(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    searched = recording_searches(engine)
    openai_server.reset(reply="Revoke the old key in the IT portal [1].")
    engine.answer("How do I reset my VPN?")
    assert short_calls(openai_server) == [] and searched == ["How do I reset my VPN?"]

    openai_server.reset(
        script=["How do I reset my VPN key?"], reply="Revoke the old key in the IT portal [1]."
    )
    answer = engine.answer("and how do I reset it?", history=DINNER_HISTORY)
    (rewrite,) = short_calls(openai_server)
    assert "team dinner reimbursement limit" in rewrite["messages"][1]["content"]
    assert searched[-1] == "How do I reset my VPN key?"  # not the dinner-prefixed text
    assert answer.citations[0].title == "VPN how-to"
    streamed = openai_server.behaviour.requests[-1]["body"]["messages"]
    assert [m["content"] for m in streamed[1:3]] == [
        t.text for t in DINNER_HISTORY
    ]  # the answer sees history
    engine.close()


def test_rewrite_failure_falls_back_to_the_history_prefixed_search(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    searched = recording_searches(engine)
    openai_server.reset(fail_first=1, reply="Contractors are reimbursed for travel only [1].")
    answer = engine.answer("and for contractors?", history=DINNER_HISTORY)
    assert searched == ["What is the team dinner reimbursement limit? and for contractors?"]
    assert answer.citations[0].title == "Expenses policy" and not answer.extractive
    assert [r.__dict__.get("stage") for r in caplog.records if r.__dict__.get("event") == "llm_error"] == [
        "rewrite"
    ]
    engine.close()


def test_multi_query_issues_n_searches_and_fuses_them(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url, multi_query=3)
    searched = recording_searches(engine)
    openai_server.reset(
        script=["1. connect to the VPN\n- WireGuard configuration\nVPN client setup\nfourth, ignored"],
        reply="Install WireGuard and import the configuration [1].",
    )
    answer = engine.answer("How do I get on the VPN?")
    assert searched == [
        "How do I get on the VPN?",
        "connect to the VPN",
        "WireGuard configuration",
        "VPN client setup",
    ]
    assert "3 different search queries" in short_calls(openai_server)[0]["messages"][0]["content"]
    assert answer.citations[0].title == "VPN how-to"
    # RAG_MULTI_QUERY=0 (or an arm's override) turns it off
    searched.clear()
    openai_server.reset(reply="Install WireGuard [1].")
    engine.answer("How do I get on the VPN?", overrides={"multi_query": 0})
    assert searched == ["How do I get on the VPN?"] and short_calls(openai_server) == []
    engine.close()


def _cand(doc: str, position: int = 0) -> Candidate:
    return Candidate(Chunk(doc, "s", doc, f"text of {doc}", "", [], position), dense_score=0.5)


def test_rrf_fusion_sums_ranks_and_keeps_the_first_lists_scores() -> None:
    a, b, c = _cand("a"), _cand("b"), _cand("c")
    b_again = _cand("b")
    b_again.dense_score = 0.9
    fused = fuse_candidates([[a, b], [b_again, c]], k=20, limit=3)
    assert [x.chunk.doc_id for x in fused] == ["b", "a", "c"]
    assert fused[0] is b and fused[0].dense_score == 0.5
    assert fused[0].fused_score == pytest.approx(1 / 22 + 1 / 21)


def test_the_sentinel_becomes_an_abstention_with_the_closest_sources(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    openai_server.reset(reply=f"{NO_ANSWER}.")
    tokens: list[str] = []
    answer = engine.answer("What is the team dinner limit in Lisbon?", on_token=tokens.append)
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT)
    assert outcome_of(answer) == "abstained"
    assert 0 < len(answer.citations) <= 3 and answer.citations[0].title == "Expenses policy"
    assert NO_ANSWER not in "".join(tokens) and "".join(tokens) == answer.text
    assert answer.cost_usd > 0  # the call that said so is still paid for
    system = openai_server.behaviour.requests[-1]["body"]["messages"][0]["content"]
    assert NO_ANSWER in system
    engine.close()


def test_an_unsupported_citation_is_dropped(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    openai_server.reset(
        reply="Team dinners are reimbursed up to $60 per person [1]. Quarterly offsites happen in Lisbon every spring [1]."
    )
    answer = engine.answer("What is the team dinner limit?")
    assert answer.text == (
        "Team dinners are reimbursed up to $60 per person [1]. Quarterly offsites happen in Lisbon every spring."
    )
    assert not answer.extractive and [c.n for c in answer.citations] == [1]
    engine.close()


def test_an_answer_with_no_supported_citation_is_shown_as_quoted_passages(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url)
    openai_server.reset(reply="Quarterly offsites happen in Lisbon every spring [1].")
    answer = engine.answer("What is the team dinner limit?")
    assert answer.extractive and answer.error is None
    assert "citations did not match its sources" in answer.text.splitlines()[0]
    assert "$60 per person" in answer.text and "Lisbon" not in answer.text
    # grounding_min_overlap=0 switches the check off
    off = engine.answer("What is the team dinner limit?", overrides={"grounding_min_overlap": 0})
    assert off.text == "Quarterly offsites happen in Lisbon every spring [1]."
    engine.close()


def test_support_check_reads_each_sentence_against_its_own_source() -> None:
    from rag_core.settings import Settings
    from rag_core.sparse import Bm25Encoder

    sparse = Bm25Encoder(Settings(_env_file=None))
    sources = {1: "Deploys are frozen on Fridays after 3 pm.", 2: "Install WireGuard from the IT portal."}
    grounded = check_citations(
        "Deploys are frozen on Fridays [1][2]. Install WireGuard [2].", sources, sparse, 0.5
    )
    assert grounded.text == "Deploys are frozen on Fridays [1]. Install WireGuard [2]."
    assert grounded.supported == {1, 2} and grounded.dropped == 1
    assert is_no_answer(f"`{NO_ANSWER}`") and not is_no_answer(f"Yes. {NO_ANSWER}")


def test_every_call_is_charged_to_the_question_and_the_daily_cap(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    engine = engine_like(small_engine, tmp_path, generator_url=openai_server.base_url, multi_query=2)
    reply = "Contractors are reimbursed for travel only [1]."
    openai_server.reset(
        script=["Are contractors reimbursed for team dinners?", "contractor expenses"], reply=reply
    )
    kv = MemoryKV()
    conversation = Conversation(engine=engine, settings=engine.settings, kv=kv)
    answer = asyncio.run(
        conversation.ask(Question("slack", "and contractors?", "U1", "C1", history=DINNER_HISTORY), _Sink())
    )
    assert answer is not None and len(short_calls(openai_server)) == 2
    answer_usd = (321 * 0.15 + len(reply.split(" ")) * 0.60) / 1e6
    assert answer.cost_usd == pytest.approx(2 * SHORT_CALL_USD + answer_usd, rel=1e-6)
    assert answer.tokens_in == 2 * 100 + 321
    day_key = next(k for k in kv._data if k.startswith("spend:"))
    assert float(kv.get(day_key) or 0) == pytest.approx(answer.cost_usd, rel=1e-6)
    engine.close()


def test_a_call_the_question_budget_cannot_pay_for_is_not_made(
    small_engine: Engine, tmp_path: Path, openai_server: LLMServer
) -> None:
    settings = make_settings(tmp_path, max_cost_per_question_usd=0.000_05, llm_max_output_tokens=20)
    assert token_budget(settings, 100, spent_usd=0.000_02) < token_budget(settings, 100)
    engine = engine_like(
        small_engine,
        tmp_path / "e",
        generator_url=openai_server.base_url,
        multi_query=3,  # 120 output tokens at most: more than the budget allows
        max_cost_per_question_usd=0.000_05,
        llm_max_output_tokens=20,
    )
    openai_server.reset(reply="Install WireGuard [1].")
    answer = engine.answer("How do I get on the VPN?")
    assert short_calls(openai_server) == [] and answer.cost_usd <= 0.000_05
    engine.close()


class _Sink:
    async def started(self) -> None:
        pass

    async def update(self, partial_text: str) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        return None

    async def refused(self, message: str) -> None:
        raise AssertionError(message)

    async def failed(self, message: str, citations: list[Citation]) -> None:
        raise AssertionError(message)


def test_without_an_llm_a_question_the_passages_do_not_answer_abstains(small_engine: Engine) -> None:
    # The expenses page is on topic (it passes the relevance threshold) but says nothing about Lisbon.
    question = "How much are team dinners reimbursed in Lisbon?"
    # The shipped default is cautious (safe on corpora it never saw); a team calibrates its own threshold, so the
    # check is exercised here at one between the two questions' scores (`ragbot calibrate`, docs/answers.md).
    scored = {
        "answerability_min": 1e-9
    }  # the score is computed whole (as `calibrate` does), nothing abstains
    small_engine.score_answerability = True
    try:
        passed = small_engine.answer(question, overrides=scored)
        answered = small_engine.answer("How much are team dinners reimbursed?", overrides=scored)
    finally:
        small_engine.score_answerability = False
    assert not passed.abstained and passed.extractive and passed.citations[0].title == "Expenses policy"
    assert passed.answerability is not None and answered.answerability is not None
    assert passed.answerability < answered.answerability
    calibrated = {"answerability_min": (passed.answerability + answered.answerability) / 2}
    answer = small_engine.answer(question, overrides=calibrated)
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT) and answer.answerability is not None
    assert outcome_of(answer) == "abstained" and answer.citations[0].title == "Expenses policy"
    assert not small_engine.answer("How much are team dinners reimbursed?", overrides=calibrated).abstained
