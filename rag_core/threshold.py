"""Relevance threshold: candidates under it are dropped; none left means the engine abstains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rag_core.rerank import Reranker
from rag_core.types import Candidate


def min_relevance(reranker: Reranker, overrides: Mapping[str, Any]) -> float:
    """The one rule: an explicit `min_relevance` override wins, else the active reranker's calibrated threshold.

    The active reranker is `NoReranker` when reranking is off, whose threshold is `settings.min_relevance`.
    """
    if "min_relevance" in overrides:
        return float(overrides["min_relevance"])
    return reranker.min_relevance


def above_threshold(candidates: list[Candidate], min_relevance: float) -> list[Candidate]:
    return [c for c in candidates if c.relevance is not None and c.relevance >= min_relevance]
