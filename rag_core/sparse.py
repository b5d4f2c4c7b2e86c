"""BM25 sparse vectors: term-frequency weights here, IDF applied by Qdrant (`modifier=idf`).

Uses Qdrant's own BM25 tokenizer (English stemming and stopwords) from qdrant-edge, so the embedded store and a
Qdrant server see the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass

from qdrant_edge import Bm25, Bm25Config

from rag_core.settings import Settings


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]
    values: list[float]


class Bm25Encoder:
    def __init__(self, settings: Settings) -> None:
        self._model = Bm25(
            Bm25Config(
                k=settings.bm25_k1, b=settings.bm25_b, avg_len=settings.bm25_avg_len, language="english"
            )
        )

    def encode_document(self, text: str) -> SparseVector:
        vec = self._model.embed_document(text)
        return SparseVector(list(vec.indices), list(vec.values))

    def encode_query(self, text: str) -> SparseVector:
        vec = self._model.embed_query(text)
        return SparseVector(list(vec.indices), list(vec.values))
