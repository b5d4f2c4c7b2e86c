"""Hybrid retrieval: dense and BM25 candidates from the store, fused by reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_core.embedding import Embedder
from rag_core.permissions import Audience
from rag_core.sparse import Bm25Encoder
from rag_core.store import Hit, VectorStore, Where
from rag_core.store.payload import chunk_from_payload
from rag_core.types import Candidate


def rrf_fuse(rankings: Sequence[Sequence[Hit]], k: int) -> list[tuple[str, float]]:
    """Point ids by summed 1/(k + rank) over the rankings, best first (ties keep first-seen order)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


class HybridRetriever:
    def __init__(self, store: VectorStore, embedder: Embedder, sparse: Bm25Encoder, rrf_k: int) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.rrf_k = rrf_k

    def retrieve(
        self,
        query: str,
        limit: int,
        generation: int,
        allowed_sources: Sequence[str] | None = None,
        *,
        dense_text: str | None = None,
        audience: Audience | None = None,
    ) -> list[Candidate]:
        """The `limit` best fused candidates visible at `generation`, restricted to `allowed_sources` if given
        and to documents `audience` may read (None: public documents only), both inside the store query.

        `dense_text` (a HyDE passage) replaces the query for the dense search, embedded as a passage."""
        readers = (audience or Audience.public()).reader_values()
        if dense_text is not None:
            query_vec = self.embedder.encode_passages([dense_text])[0]
        else:
            query_vec = self.embedder.encode_query(query)
        dense_hits, sparse_hits = self.store.search(
            query_vec,
            self.sparse.encode_query(query),
            limit,
            Where.visible(generation, allowed_sources, readers),
        )
        return self.fuse(query_vec, dense_hits, sparse_hits, limit)

    def fuse(
        self, query_vec: np.ndarray, dense_hits: list[Hit], sparse_hits: list[Hit], limit: int
    ) -> list[Candidate]:
        by_id: dict[str, Candidate] = {}
        for hit in dense_hits:
            by_id[hit.id] = Candidate(chunk_from_payload(hit.payload), dense_score=hit.score)
        for hit in sparse_hits:
            cand = by_id.get(hit.id)
            if cand is None:
                cand = by_id[hit.id] = Candidate(chunk_from_payload(hit.payload))
                if hit.dense is not None:  # cosine of a BM25-only hit, so every candidate has both signals
                    cand.dense_score = float(np.dot(query_vec, np.asarray(hit.dense, dtype=np.float32)))
            cand.sparse_score = hit.score
        fused = rrf_fuse([dense_hits, sparse_hits], self.rrf_k)[:limit]
        out = []
        for point_id, score in fused:
            cand = by_id[point_id]
            cand.fused_score = score
            out.append(cand)
        return out
