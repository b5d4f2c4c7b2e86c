"""The one small interface every vector store implements, and the filter vocabulary it understands."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rag_core.sparse import SparseVector

DENSE = "dense"
SPARSE = "bm25"
NEVER = 2**53  # `dead` of a live point: deleted at no generation
INDEXED_FIELDS = {
    "source": "keyword",
    "doc_id": "keyword",
    "gen": "integer",
    "dead": "integer",
    "position": "integer",
    "readers": "keyword",  # rag_core/permissions.py: filtered inside every search
}


@dataclass(slots=True)
class StoredPoint:
    id: str  # UUID string
    dense: Sequence[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None  # the point's dense vector, returned with BM25 hits


@dataclass(slots=True)
class Where:
    """Conditions on point payloads; unset fields do not constrain."""

    source: str | None = None
    sources: Sequence[str] | None = None  # any of
    doc_id: str | None = None
    position: int | None = None
    gen_lte: int | None = None
    gen_gt: int | None = None
    dead_gt: int | None = None
    dead_lte: int | None = None
    # any of these `readers` values, or no `readers` field at all (points written before permissions existed)
    readers: Sequence[str] | None = None

    @classmethod
    def visible(
        cls, generation: int, sources: Sequence[str] | None = None, readers: Sequence[str] | None = None
    ) -> Where:
        """Points a reader at committed `generation` may see: written by then and not deleted by then, from
        `sources` (None: any) and readable by one of `readers` (None: no restriction, the operator)."""
        return cls(sources=sources, gen_lte=generation, dead_gt=generation, readers=readers)


class VectorStore(Protocol):
    def ensure_collection(self, dim: int) -> None:
        """Create the collection (dense cosine + sparse BM25 with IDF, payload indexes) if it does not exist."""

    def upsert(self, points: Sequence[StoredPoint]) -> None: ...

    def search(
        self, dense: Sequence[float] | np.ndarray, sparse: SparseVector, limit: int, where: Where
    ) -> tuple[list[Hit], list[Hit]]:
        """Dense and BM25 candidates for one query, best first; BM25 hits carry their dense vector."""

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None: ...

    def delete(self, where: Where) -> None: ...

    def scroll(self, where: Where, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Payloads (only `fields`) of every point matching `where`."""

    def count(self, where: Where | None = None) -> int: ...

    def read_meta(self) -> dict[str, Any]:
        """Store-wide metadata (committed generation and the like); {} when never written."""

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace the metadata atomically and durably; writes before it are durable first."""

    def optimize(self) -> None:
        """Build search indexes for recently written points (a no-op where the server does it)."""

    def ping(self) -> bool: ...

    def close(self) -> None: ...
