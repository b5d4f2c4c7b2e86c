"""Relevance threshold: candidates under it are dropped; none left means the engine abstains."""

from __future__ import annotations

from rag_core.types import Candidate


def above_threshold(candidates: list[Candidate], min_relevance: float) -> list[Candidate]:
    return [c for c in candidates if c.relevance is not None and c.relevance >= min_relevance]
