"""The payload codec: how a `Chunk` is stored on its point (plus its version and gen/dead visibility), and back.

The writer (`indexing.py`) encodes and the retriever decodes; both import it from here, not from each other.
"""

from __future__ import annotations

from typing import Any

from rag_core.permissions import EVERYONE
from rag_core.store.base import NEVER
from rag_core.types import Chunk


def chunk_payload(chunk: Chunk, version: str, gen: int) -> dict[str, Any]:
    return {
        "doc_id": chunk.doc_id,
        "source": chunk.source,
        "title": chunk.title,
        "url": chunk.url,
        "heading_path": chunk.heading_path,
        "position": chunk.position,
        "overlap": chunk.overlap,
        "text": chunk.text,
        "readers": list(chunk.readers),
        "version": version,
        "gen": gen,
        "dead": NEVER,
    }


def chunk_from_payload(payload: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=payload["doc_id"],
        source=payload["source"],
        title=payload.get("title", ""),
        text=payload.get("text", ""),
        url=payload.get("url", ""),
        heading_path=list(payload.get("heading_path") or []),
        position=int(payload.get("position", 0)),
        overlap=int(payload.get("overlap", 0)),
        readers=tuple(payload.get("readers") or (EVERYONE,)),
    )
