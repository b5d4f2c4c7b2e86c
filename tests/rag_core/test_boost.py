"""The feedback boost: bounded, order-preserving without votes, and hidden documents dropped."""

from __future__ import annotations

import pytest

from rag_core.boost import apply_feedback
from rag_core.types import Candidate, Chunk


def _cand(doc: str, fused: float, rerank: float | None = None) -> Candidate:
    chunk = Chunk(doc_id=doc, source="wiki", title=doc, text="t", url="", heading_path=[], position=0)
    return Candidate(chunk, dense_score=0.5, fused_score=fused, rerank_score=rerank)


def test_without_votes_the_order_and_scores_are_unchanged() -> None:
    cands = [_cand("a", 0.05), _cand("b", 0.049), _cand("c", 0.01)]
    out = apply_feedback(cands, {}, set(), 0.1)
    assert [c.chunk.doc_id for c in out] == ["a", "b", "c"]
    assert [c.fused_score for c in out] == [0.05, 0.049, 0.01]


def test_votes_reorder_near_ties_but_the_boost_is_bounded() -> None:
    cands = [_cand("a", 0.050), _cand("b", 0.048), _cand("c", 0.030)]
    out = apply_feedback(cands, {("wiki", "b"): 1.0, ("wiki", "a"): -0.5, ("wiki", "c"): 5.0}, set(), 0.1)
    assert [c.chunk.doc_id for c in out] == ["b", "a", "c"]  # c: weight clipped to 1, +10 % is not enough
    assert out[0].fused_score == pytest.approx(0.048 * 1.1) and out[1].fused_score == pytest.approx(
        0.050 * 0.95
    )
    assert out[2].fused_score == pytest.approx(0.030 * 1.1)


def test_the_reranker_score_is_boosted_when_a_reranker_ordered_the_list() -> None:
    cands = [_cand("a", 0.01, rerank=-1.0), _cand("b", 0.02, rerank=-1.05)]
    out = apply_feedback(cands, {("wiki", "b"): 1.0}, set(), 0.1)
    assert [c.chunk.doc_id for c in out] == ["b", "a"]  # -1.05 + 0.105 > -1.0: a boost raises negatives too
    assert out[1].fused_score == 0.01  # the fused score was not the ordering score here


def test_hidden_documents_are_dropped_and_zero_boost_turns_votes_off() -> None:
    cands = [_cand("a", 0.05), _cand("b", 0.049)]
    out = apply_feedback(cands, {("wiki", "b"): 1.0}, {("wiki", "a")}, 0.0)
    assert [c.chunk.doc_id for c in out] == ["b"] and out[0].fused_score == 0.049
