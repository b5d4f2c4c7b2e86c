"""Rerankers: a cross-encoder when one loads, else score fusion of the dense and BM25 signals; none when off.

Each sets `rerank_score` (ordering) and `relevance` (calibrated, what the threshold looks at) on each candidate.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Protocol

from rag_core.embedding import configure_torch, resolve_model_path
from rag_core.settings import Settings
from rag_core.types import Candidate

log = logging.getLogger(__name__)


class Reranker(Protocol):
    name: str
    min_relevance: float  # calibrated threshold on `relevance` for this reranker

    def rerank(self, query: str, candidates: list[Candidate]) -> list[Candidate]: ...


class CrossEncoderReranker:
    """sentence-transformers CrossEncoder over (question, chunk) pairs; relevance = sigmoid of its logit."""

    def __init__(self, model_name_or_path: str, min_relevance: float, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(resolve_model_path(model_name_or_path), device="cpu")
        self.name = f"cross-encoder:{model_name_or_path}"
        self.min_relevance = min_relevance
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one predict at a time: the model is not safe to call from two threads

    def rerank(self, query: str, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        pairs = [(query, c.chunk.embed_text) for c in candidates]
        with self._lock:
            logits = self.model.predict(
                pairs, batch_size=self.batch_size, activation_fn=_identity, convert_to_numpy=True
            )
        for cand, logit in zip(candidates, logits, strict=True):
            cand.rerank_score = float(logit)
            cand.relevance = 1.0 / (1.0 + math.exp(-float(logit)))
        return sorted(candidates, key=lambda c: -(c.rerank_score or 0.0))


def _identity(x: Any) -> Any:  # torch tensor in, same tensor out
    return x


class FusionReranker:
    """Convex mix of the dense cosine and max-normalised BM25; relevance is the dense cosine (an absolute scale).

    The best measured alternative when no cross-encoder weights can be loaded (see README, quality figures).
    """

    name = "score-fusion"

    def __init__(self, dense_weight: float, min_relevance: float) -> None:
        self.dense_weight = dense_weight
        self.min_relevance = min_relevance

    def rerank(self, query: str, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        top_bm25 = max((c.sparse_score or 0.0) for c in candidates) or 1.0
        for cand in candidates:
            dense = cand.dense_score or 0.0
            bm25 = (cand.sparse_score or 0.0) / top_bm25
            cand.rerank_score = self.dense_weight * dense + (1.0 - self.dense_weight) * bm25
            cand.relevance = dense
        return sorted(candidates, key=lambda c: -(c.rerank_score or 0.0))


class NoReranker:
    """Reranking off (`use_reranker=False`): retrieval order kept, relevance is the dense cosine."""

    name = "none"

    def __init__(self, min_relevance: float) -> None:
        self.min_relevance = min_relevance

    def rerank(self, query: str, candidates: list[Candidate]) -> list[Candidate]:
        for cand in candidates:
            cand.relevance = cand.dense_score
        return candidates


_warned: set[str] = set()  # cross-encoders that failed to load in this process


def load_reranker(settings: Settings) -> Reranker:
    """The configured cross-encoder, or score fusion with a clear log line saying why."""
    fusion = FusionReranker(settings.fusion_dense_weight, settings.min_relevance)
    if not settings.rerank_model:
        return fusion
    configure_torch(settings)
    try:
        reranker = CrossEncoderReranker(settings.rerank_model, settings.min_rerank_score)
    except Exception as exc:  # noqa: BLE001 - missing weights, no hub, bad folder: all mean "not this model"
        # Warned once per process and model: a command that builds several engines says it once.
        first = settings.rerank_model not in _warned
        _warned.add(settings.rerank_model)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "cross-encoder not loaded; reranking by score fusion instead",
            extra={
                "event": "reranker_fallback",
                "model": settings.rerank_model,
                "reason": str(exc).split("\n")[0],
            },
        )
        return fusion
    log.info("cross-encoder loaded", extra={"event": "reranker_loaded", "model": settings.rerank_model})
    return reranker
