"""Feedback at ranking time: a bounded boost or penalty from document votes, and hidden documents dropped.

Applied once, to the ranked candidates, after fusion (and the reranker when one reorders): each candidate's
ordering score moves by at most `max_boost` of its own size, so votes can reorder near-ties but never lift a
weak passage over a clearly better one, and never change whether a passage passes the relevance threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Protocol

from rag_core.types import Candidate

DocKey = tuple[str, str]  # (source, doc_id)


class DocSignals(Protocol):
    """What the ranking needs from the feedback: per-document vote weights in [-1, 1] and hidden documents."""

    def weights(self) -> Mapping[DocKey, float]: ...

    def hidden(self) -> Set[DocKey]: ...


def doc_key(cand: Candidate) -> DocKey:
    return (cand.chunk.source, cand.chunk.doc_id)


def _ordering_score(cand: Candidate) -> float:
    return cand.rerank_score if cand.rerank_score is not None else cand.fused_score


def apply_feedback(
    candidates: list[Candidate],
    weights: Mapping[DocKey, float],
    hidden: Set[DocKey],
    max_boost: float,
) -> list[Candidate]:
    """Candidates without hidden documents, reordered by their score moved by `max_boost * weight * |score|`.

    With no weights (or `max_boost` 0) the order is exactly the input order."""
    kept = [c for c in candidates if doc_key(c) not in hidden] if hidden else list(candidates)
    if not weights or max_boost <= 0:
        return kept
    for cand in kept:
        weight = max(-1.0, min(1.0, weights.get(doc_key(cand), 0.0)))
        if weight:
            score = _ordering_score(cand)
            moved = score + max_boost * weight * abs(score)
            if cand.rerank_score is not None:
                cand.rerank_score = moved
            else:
                cand.fused_score = moved
    return sorted(kept, key=lambda c: -_ordering_score(c))  # stable: ties keep their order
