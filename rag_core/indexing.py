"""Writes documents into the store so that readers see each document whole: old version or new, never half.

Every point carries `gen` (the sync generation that wrote it) and `dead` (the generation that deleted it).
Readers filter on the committed generation G: `gen <= G < dead`. A sync writes generation G+1 and marks replaced
points `dead = G+1`; nothing it does is visible until `commit()` publishes G+1 in one metadata write. A sync that
dies leaves G servable, and the next `begin()` removes what it left behind.

The one exception is who may read a document (`readers`): `set_readers` rewrites it on the live points at once,
without re-embedding, and bumps the metadata's `acl_epoch`, which the answer cache keys on with the generation, so a
narrowing is never waited for and no answer cached before it is served again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rag_core.chunking import Chunker
from rag_core.embedding import Embedder
from rag_core.errors import UserError
from rag_core.permissions import READERS_FIELD
from rag_core.sparse import Bm25Encoder
from rag_core.store import NEVER, StoredPoint, VectorStore, Where
from rag_core.store.payload import chunk_payload
from rag_core.types import Chunk, Document

log = logging.getLogger(__name__)

_FLUSH_CHUNKS = 256  # chunks embedded per batch across documents (bigger batches embed faster)


@dataclass(frozen=True, slots=True)
class IndexedDocument:
    """What the index holds of a document: its content version, and its readers (None: written before
    permissions existed)."""

    version: str
    readers: tuple[str, ...] | None


class IndexWriter:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        chunker: Chunker,
        sparse: Bm25Encoder,
        on_commit: Callable[[int], None] | None = None,
        optimize_after_points: int = 5_000,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.sparse = sparse
        self.on_commit = on_commit
        self.optimize_after_points = optimize_after_points
        self._tx_lock = threading.Lock()  # one transaction at a time per process (replicas use a Redis lock)

    @property
    def embedded_count(self) -> int:
        return self.embedder.embedded_count

    def committed_generation(self) -> int:
        return int(self.store.read_meta().get("generation", 0))

    def document_versions(self, source: str) -> dict[str, str]:
        return {doc_id: doc.version for doc_id, doc in self.indexed_documents(source).items()}

    def indexed_documents(self, source: str) -> dict[str, IndexedDocument]:
        """Each committed document's version and `readers` (one scroll over first chunks; both syncs read it)."""
        gen = self.committed_generation()
        where = Where(source=source, position=0, gen_lte=gen, dead_gt=gen)
        return {
            p["doc_id"]: IndexedDocument(
                p.get("version", ""),
                tuple(p[READERS_FIELD]) if p.get(READERS_FIELD) is not None else None,
            )
            for p in self.store.scroll(where, ["doc_id", "version", READERS_FIELD])
        }

    def begin(self) -> SyncTransaction:
        if not self._tx_lock.acquire(timeout=3600):
            raise RuntimeError("another sync transaction is still open in this process")
        try:
            self.store.ensure_collection(self.embedder.dim)
            check_index_model(self.store.read_meta(), self.embedder.model_id, self.embedder.dim)
            gen = self.committed_generation()
            _clean_uncommitted(self.store, gen)
            return SyncTransaction(self, gen)
        except BaseException:
            self._tx_lock.release()
            raise


class IndexModelMismatch(UserError):
    """The index was embedded with another model or dimension than the one configured now."""


def check_index_model(meta: dict[str, Any], model_id: str, dim: int) -> None:
    """Refuse to mix vectors of two models in one collection; a backend change (same model) passes."""
    indexed_model, indexed_dim = meta.get("embedding_model"), meta.get("embedding_dim")
    if indexed_model is None or (indexed_model == model_id and indexed_dim == dim):
        return  # new collection, or one written before the model was recorded (written by the same config)
    raise IndexModelMismatch(
        f"the index was embedded with {indexed_model} ({indexed_dim} dimensions) but the embedder is now "
        f"{model_id} ({dim} dimensions): run `ragbot reindex` to rebuild it with the new model"
    )


def _clean_uncommitted(store: VectorStore, committed: int) -> None:
    """Remove what an interrupted sync left: points of later generations and deletions not yet committed."""
    store.delete(Where(gen_gt=committed))
    store.set_payload(Where(dead_gt=committed, dead_lte=NEVER - 1), {"dead": NEVER})
    store.delete(Where(dead_lte=committed))  # deletions committed before a crash cut the clean-up short


class SyncTransaction:
    def __init__(self, writer: IndexWriter, committed: int) -> None:
        self.writer = writer
        self.committed = committed
        self.gen = committed + 1
        self._pending: list[tuple[Chunk, str]] = []
        self.written = 0  # chunks written by this transaction
        self._open = True
        self.started = time.monotonic()

    def __enter__(self) -> SyncTransaction:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def upsert(self, doc: Document, version: str) -> int:
        """Chunk, embed and write `doc`; replaces its committed version at commit. Returns the chunk count."""
        self._check_open()
        chunks = self.writer.chunker.split(doc)
        self._pending.extend((c, version) for c in chunks)
        self._retire(doc.source, doc.id)
        if len(self._pending) >= _FLUSH_CHUNKS:
            self._flush()
        return len(chunks)

    def delete(self, source: str, doc_id: str) -> None:
        self._check_open()
        self._retire(source, doc_id)

    def set_readers(self, source: str, doc_id: str, readers: list[str], *, invalidate: bool = True) -> None:
        """Who may read `doc_id`, written now on its live points (no re-embedding; a narrowing holds at once).

        `invalidate` bumps the `acl_epoch` so that no cached answer is served again (False for a rewrite that
        changes no one's view, e.g. filling in `readers` on points written before permissions existed)."""
        self._check_open()
        store = self.writer.store
        live = Where(source=source, doc_id=doc_id, dead_gt=self.committed)  # also this sync's new points
        store.set_payload(live, {READERS_FIELD: list(readers)})
        if invalidate:
            meta = store.read_meta()
            meta["acl_epoch"] = int(meta.get("acl_epoch", 0)) + 1
            store.write_meta(meta)

    def commit(self, meta_update: dict[str, Any] | None = None) -> int:
        """Publish the transaction; `meta_update` (top-level keys, e.g. a live source's checkpoint) is written in
        the same metadata write, so it is true exactly when the documents are."""
        self._check_open()
        try:
            self._flush()
            store = self.writer.store
            meta = store.read_meta()
            meta.update(meta_update or {})
            meta["generation"] = self.gen
            meta.update(embedding_model=self.writer.embedder.model_id, embedding_dim=self.writer.embedder.dim)
            store.write_meta(meta)  # the moment readers switch to the new state
            store.delete(Where(dead_lte=self.gen))
            if self.written >= self.writer.optimize_after_points:
                started = time.monotonic()
                store.optimize()
                seconds = round(time.monotonic() - started, 1)
                log.info(
                    "index optimized", extra={"event": "index_optimize", "chunks": self.written, "s": seconds}
                )
        finally:
            self._close()
        log.info("index committed", extra={"event": "index_commit", "generation": self.gen})
        if self.writer.on_commit:
            self.writer.on_commit(self.gen)
        return self.gen

    def write_meta(self, meta_update: dict[str, Any]) -> None:
        """Write metadata keys without publishing documents (a checkpoint that moved while nothing changed)."""
        self._check_open()
        store = self.writer.store
        meta = store.read_meta()
        meta.update(meta_update)
        store.write_meta(meta)

    def abort(self) -> None:
        if not self._open:
            return
        try:
            self._pending.clear()
            _clean_uncommitted(self.writer.store, self.committed)
        finally:
            self._close()
        log.info("index sync aborted", extra={"event": "index_abort", "generation": self.committed})

    # -- internals ------------------------------------------------------------------------------------------

    def _retire(self, source: str, doc_id: str) -> None:
        where = Where(source=source, doc_id=doc_id, gen_lte=self.committed, dead_gt=self.committed)
        self.writer.store.set_payload(where, {"dead": self.gen})

    def _flush(self) -> None:
        if not self._pending:
            return
        chunks = [c for c, _ in self._pending]
        dense = self.writer.embedder.encode_passages([c.embed_text for c in chunks])
        points = [
            StoredPoint(
                id=str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{c.source}\x00{c.doc_id}\x00{self.gen}\x00{c.position}")
                ),
                dense=vec,
                sparse=self.writer.sparse.encode_document(c.embed_text),
                payload=chunk_payload(c, version, self.gen),
            )
            for (c, version), vec in zip(self._pending, dense, strict=True)
        ]
        self.writer.store.upsert(points)
        self.written += len(points)
        self._pending.clear()

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("sync transaction already committed or aborted")

    def _close(self) -> None:
        self._open = False
        self.writer._tx_lock.release()
