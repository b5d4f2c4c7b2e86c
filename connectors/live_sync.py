"""The poll path of the sync, for live sources: apply each batch of changes, then move the checkpoint with it.

Batches are written through the same `IndexWriter` transaction as exports, a commit every
`RAG_LIVE_BATCH_DOCUMENTS` documents; the checkpoint is written in the commit's own metadata write, so a sync
killed at any point resumes from the last committed batch: nothing lost, nothing twice (documents are replaced
by id). A batch's access changes rewrite `readers` on the documents they name, without fetching or embedding
them. Every `RAG_LIVE_PRUNE_EVERY` syncs, and on `--full`, the source's id listing deletes what is gone and
re-reads documents whose access changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.errors import Skipped, SourceUnavailable
from connectors.live import AccessChange, Batch, Checkpoint, LiveConnector
from connectors.registry import make_connector
from rag_core.permissions import EVERYONE
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

if TYPE_CHECKING:
    from connectors.sync import DocumentTick, ProgressLine, SyncReport
    from rag_core.indexing import IndexWriter, SyncTransaction

log = logging.getLogger(__name__)

# Writes one document in the open transaction: its chunk count, or the reason it cannot be indexed.
Upsert = Callable[["SyncTransaction", "IndexWriter", Document, str], "int | str"]

_PROGRESS_EVERY = 1000  # documents between progress lines
_META_PREFIX = "live_checkpoint:"  # one top-level metadata key per source, so commits never clobber another's


def checkpoint_key(source: str) -> str:
    return f"{_META_PREFIX}{source}"


def stored_state(writer: IndexWriter, source: str) -> dict[str, Any]:
    """What the last committed batch of `source` left: {"cursor": checkpoint or None, "syncs": since pruning}."""
    state = writer.store.read_meta().get(checkpoint_key(source))
    return dict(state) if isinstance(state, dict) else {}


@dataclass
class _Indexed:
    version: str
    readers: tuple[str, ...]


def _indexed(writer: IndexWriter, source: str) -> dict[str, _Indexed]:
    return {
        doc_id: _Indexed(doc.version, doc.readers or (EVERYONE,))
        for doc_id, doc in writer.indexed_documents(source).items()
    }


def sync_live(
    config: SourceConfig,
    settings: Settings,
    writer: IndexWriter,
    full: bool,
    report: SyncReport,
    progress: ProgressLine | None,
    on_document: DocumentTick | None,
    *,
    version: Callable[[Document], str],
    upsert: Upsert,
) -> None:
    """Poll one live source into the index (see the module docstring); failures raise, as for exports.

    `version` and `upsert` are the export sync's own (content hash; write one document or say why not), passed in
    so that both paths index a document the same way."""
    connector = make_connector(config, settings)
    try:
        run = _Run(config, settings, writer, full, report, progress, on_document, connector)
        run.version_of, run.upsert = version, upsert
        run.run()
    finally:
        connector.close()
        report.api_calls = connector.calls


class _Run:
    def __init__(
        self,
        config: SourceConfig,
        settings: Settings,
        writer: IndexWriter,
        full: bool,
        report: SyncReport,
        progress: ProgressLine | None,
        on_document: DocumentTick | None,
        connector: LiveConnector,
    ) -> None:
        self.config, self.settings, self.writer, self.full = config, settings, writer, full
        self.report, self.progress, self.on_document, self.connector = (
            report,
            progress,
            on_document,
            connector,
        )
        self.indexed = _indexed(writer, config.name)
        self.done = 0
        self.next_progress = _PROGRESS_EVERY
        self.version_of: Callable[[Document], str] = lambda doc: ""
        self.upsert: Upsert | None = None

    def run(self) -> None:
        state = stored_state(self.writer, self.config.name)
        cursor: Checkpoint | None = None if self.full else state.get("cursor")
        syncs = 0 if cursor is None else int(state.get("syncs", 0)) + 1
        prune = self.full or (
            bool(self.indexed) and (cursor is None or syncs >= self.settings.live_prune_every)
        )
        _say(
            self.progress,
            f"{self.config.name}: {'loading everything' if cursor is None else 'polling changes'}…",
        )
        applied = False
        for group in self._groups(self.connector.poll(cursor)):
            cursor = next((b.checkpoint for b in reversed(group) if b.checkpoint is not None), cursor)
            self._apply(group, {"cursor": cursor, "syncs": syncs})
            applied = True
            prune = prune or any(b.wants_listing for b in group)
        if prune:
            self._prune(cursor)
            return
        if not applied:  # a poll with nothing to say still counts towards the next pruning
            self._apply([], {"cursor": cursor, "syncs": syncs})
        if self.report.index_version is None:
            self.report.index_version = self.writer.committed_generation()

    def _groups(self, batches: Iterator[Batch]) -> Iterator[list[Batch]]:
        """Batches gathered until they hold `live_batch_documents` documents (one commit each)."""
        group: list[Batch] = []
        size = 0
        for batch in batches:
            group.append(batch)
            size += len(batch.documents) + len(batch.deleted)
            if size >= self.settings.live_batch_documents:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _apply(self, group: list[Batch], state: dict[str, Any]) -> None:
        with self.writer.begin() as tx:
            changed = 0
            for batch in group:
                for item in batch.documents:
                    changed += self._document(tx, item)
                for doc_id in batch.deleted:
                    changed += self._delete(tx, doc_id)
                for access in batch.access:
                    changed += self._access(tx, access)
            self._finish(tx, changed, state)

    def _document(self, tx: SyncTransaction, item: Document | Skipped) -> int:
        assert self.upsert is not None
        self.done += 1
        if self.on_document:
            self.on_document(self.config.name, self.done, None)
        if isinstance(item, Skipped):
            self.report.skipped.append((item.path, item.reason))
            return 0
        version = self.version_of(item)
        readers = tuple(item.access.readers())
        old = self.indexed.get(item.id)
        if old is not None and old.version == version and not self.full:
            if old.readers == readers:
                self.report.unchanged += 1
                return 0
            # only who may read it changed: rewrite `readers` on its points, no re-embedding (docs/permissions.md)
            tx.set_readers(self.config.name, item.id, list(readers))
            self.report.permissions_changed += 1
            self.indexed[item.id] = _Indexed(version, readers)
            return 1
        written = self.upsert(tx, self.writer, item, version)
        if isinstance(written, str):
            self.report.skipped.append((item.id, written))
            return 0
        self.report.chunks_written += written
        if old is None:
            self.report.added += 1
        else:
            self.report.updated += 1
        self.indexed[item.id] = _Indexed(version, readers)
        return 1

    def _delete(self, tx: SyncTransaction, doc_id: str) -> int:
        if self.indexed.pop(doc_id, None) is None:
            return 0  # never indexed (filtered out, or deleted before we saw it)
        under = [i for i in self.indexed if i.startswith(f"{doc_id}/")]  # a page's attachments go with it
        for gone in [doc_id, *under]:
            self.indexed.pop(gone, None)
            tx.delete(self.config.name, gone)
        self.report.deleted += 1 + len(under)
        return 1

    def _access(self, tx: SyncTransaction, change: AccessChange) -> int:
        """Rewrite `readers` on the indexed documents the change names whose readers differ (no fetch, no embedding)."""
        readers = tuple(change.access.readers())
        stale = [
            doc_id for doc_id, old in self.indexed.items() if change.names(doc_id) and old.readers != readers
        ]
        for n, doc_id in enumerate(stale, 1):
            # acl_epoch bumps after the first rewrite (no answer cached before the change is served again) and
            # after the last (nor one cached while it was written), not after each: each is a durable meta write
            tx.set_readers(self.config.name, doc_id, list(readers), invalidate=n in (1, len(stale)))
            self.indexed[doc_id] = _Indexed(self.indexed[doc_id].version, readers)
        self.report.permissions_changed += len(stale)
        return 1 if stale else 0

    def _finish(self, tx: SyncTransaction, changed: int, state: dict[str, Any]) -> None:
        meta = {checkpoint_key(self.config.name): state}
        if changed:
            self.report.index_version = tx.commit(meta)
            if self.done >= self.next_progress:  # a line per ~1,000 documents (chat adapters post each one)
                _say(self.progress, f"{self.config.name}: {self.done:,} documents read and committed")
                self.next_progress = self.done + _PROGRESS_EVERY
        else:  # nothing to publish: keep the index version (cached answers stay valid), move the checkpoint
            tx.write_meta(meta)
            tx.abort()

    def _prune(self, cursor: Checkpoint | None) -> None:
        """Delete what the listing no longer names; re-read documents whose listed access differs."""
        listed = {entry.id: entry.access for entry in self.connector.list_ids()}
        if not listed and self.indexed:
            raise SourceUnavailable(
                f"the id listing of {self.config.name} is empty; kept the {len(self.indexed)} indexed documents"
            )
        stale = sorted(
            doc_id
            for doc_id, access in listed.items()
            if access is not None
            and doc_id in self.indexed
            and self.indexed[doc_id].readers != tuple(access.readers())
        )
        with self.writer.begin() as tx:
            changed = 0
            for item in self.connector.fetch(stale) if stale else ():
                changed += self._document(tx, item)
            for doc_id in sorted(self.indexed.keys() - listed.keys()):
                changed += self._delete(tx, doc_id)
            self._finish(tx, changed, {"cursor": cursor, "syncs": 0})
        if self.report.index_version is None:
            self.report.index_version = self.writer.committed_generation()


def _say(progress: ProgressLine | None, line: str) -> None:
    if progress is None:
        return
    try:
        progress(line)
    except Exception:
        log.warning("sync progress callback failed", exc_info=True)
