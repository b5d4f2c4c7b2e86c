"""Incremental sync of configured exports into the index, one transaction per source.

Each document's content hash is its version: unchanged documents are not re-embedded, changed ones are replaced,
and documents gone from the export are deleted, all published at once by the transaction's commit. A sync that
dies leaves the previous state servable; the next one redoes the work. A missing or empty export deletes nothing.
A change of who may read a document is not part of its version: it is written on its points at once, without
re-embedding, and commits a new index version (docs/permissions.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.errors import ExportUnavailable, Skipped
from connectors.parse_pool import resolve, workers_for
from connectors.registry import check_kinds, is_live, make_reader
from rag_core.errors import ConfigError, RagbotError, UserError
from rag_core.kv import KeyValue, make_kv
from rag_core.settings import CURATED_KIND, Settings, SourceConfig, curated_source
from rag_core.types import Document

if TYPE_CHECKING:
    from connectors.base import Reader
    from rag_core.indexing import IndexWriter, SyncTransaction

log = logging.getLogger(__name__)

# Bump when readers start producing different text for the same file, so the next sync re-embeds everything.
READER_FORMAT = 2
_KEPT_REPORTS = 200  # JSON reports kept per source under data_dir/sync-reports/<source>/

ProgressLine = Callable[[str], None]  # a few human-readable lines per sync (chat adapters post them)
DocumentTick = Callable[[str, int, int | None], None]  # (source, documents done, total or None) per document


@dataclass
class SyncReport:
    """What one sync of one source did."""

    source: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duration_s: float = 0.0
    index_version: int | None = None
    error: str | None = None
    full: bool = False
    chunks_written: int = 0
    permissions_changed: int = 0  # documents whose readers changed (no re-embedding; in effect at once)
    readers_backfilled: int = 0  # documents indexed before permissions existed, given their readers
    api_calls: int | None = None  # live sources: requests made to the source's API
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: failed: {self.error}"
        changed = f", {self.permissions_changed} with changed permissions" if self.permissions_changed else ""
        return (
            f"{self.source}: {self.added} added, {self.updated} updated, {self.deleted} deleted, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped{changed} in {self.duration_s:.1f} s "
            f"(index version {self.index_version})"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return data


def render_report(reports: list[SyncReport], max_skipped: int = 10) -> str:
    """Reports as text lines: one summary per source, then up to `max_skipped` skipped files with reasons."""
    if not reports:
        return "Nothing to sync: no sources are configured."
    lines: list[str] = []
    for report in reports:
        lines.append(report.summary())
        for path, reason in report.skipped[:max_skipped]:
            lines.append(f"  skipped {path}: {reason}")
        if len(report.skipped) > max_skipped:
            lines.append(f"  … and {len(report.skipped) - max_skipped} more skipped (see the JSON report)")
    return "\n".join(lines)


def content_version(doc: Document, settings: Settings) -> str:
    """A hash of everything that ends up in the index for `doc`, including the settings that shape its chunks."""
    payload = [
        READER_FORMAT,
        settings.embedding_model,
        settings.chunk_tokens,
        settings.chunk_overlap_tokens,
        doc.title,
        doc.text,
        doc.url,
        doc.breadcrumb,
        doc.author,
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:32]


def select_sources(settings: Settings, source: str | None, *, curated: bool = False) -> list[SourceConfig]:
    """All configured sources, or the one named; an unknown name is a `UserError` listing the known ones.

    Every source's kind is checked against the reader registry here, before anything is read: the settings
    (in rag_core) hold the kind as a plain string, since the engine must not know the connectors. The curated
    answers are synced whenever one changes (connectors/curated.py): "all" leaves them out unless `curated`.
    """
    if source is not None and settings.knowledge_enabled and source == curated_source(settings).name:
        return [curated_source(settings)]
    if not settings.sources:
        raise ConfigError("no sources are configured: set RAG_SOURCES (see docs/connectors.md)")
    check_kinds(settings.sources)
    if source is None:
        return [c for c in settings.sources if curated or c.kind != CURATED_KIND]
    for config in settings.sources:
        if config.name == source:
            return [config]
    known = ", ".join(c.name for c in settings.sources)
    raise UserError(f"unknown source {source!r}; known sources: {known}")


_kv_by_url: dict[str | None, KeyValue] = {}


def default_kv(redis_url: str | None) -> KeyValue:
    """One store per process and URL, so in-process locks are shared by every caller that passes no `kv`."""
    if redis_url not in _kv_by_url:
        _kv_by_url[redis_url] = make_kv(redis_url)
    return _kv_by_url[redis_url]


def run_sync(
    settings: Settings,
    writer: IndexWriter,
    source: str | None = None,
    full: bool = False,
    progress: ProgressLine | None = None,
    *,
    on_document: DocumentTick | None = None,
    kv: KeyValue | None = None,
) -> list[SyncReport]:
    """Sync one source (or all) now; each source's outcome, failures included, is in its report.

    `full` re-embeds every document. `progress` gets a few lines per source; `on_document` a tick per document.
    Raises `UserError` for an unknown source name; KeyboardInterrupt aborts the open transaction and propagates.
    """
    configs = select_sources(settings, source)
    kv = kv or default_kv(settings.redis_url)
    return [sync_source(config, settings, writer, full, progress, on_document, kv) for config in configs]


def sync_source(
    config: SourceConfig,
    settings: Settings,
    writer: IndexWriter,
    full: bool = False,
    progress: ProgressLine | None = None,
    on_document: DocumentTick | None = None,
    kv: KeyValue | None = None,
    lock_held: bool = False,
    reader: Reader | None = None,
) -> SyncReport:
    """One source, under a lock so that no two processes or replicas sync it at once (`lock_held`: the caller,
    `ragbot reindex`, already holds it). `reader`: read with this one instead of the kind's default."""
    report = SyncReport(source=config.name, full=full)
    start = time.monotonic()
    kv = kv or default_kv(settings.redis_url)
    try:
        lock = (
            contextlib.nullcontext(True)
            if lock_held
            else kv.lock(f"sync:{config.name}", ttl_s=settings.sync_lock_ttl_s, blocking=False)
        )
        with lock as acquired:
            if not acquired:
                report.error = "another sync of this source is running"
            else:
                _say(progress, f"{config.name}: syncing{' (full re-embed)' if full else ''}…")
                if is_live(config.kind):
                    from connectors.live_sync import sync_live

                    sync_live(
                        config,
                        settings,
                        writer,
                        full,
                        report,
                        progress,
                        on_document,
                        version=lambda doc: content_version(doc, settings),
                        upsert=_upsert,
                    )
                else:
                    _sync(config, settings, writer, full, report, progress, on_document, reader)
    except RagbotError as exc:  # export unreadable, store down, bad kind: nothing was deleted
        report.error = str(exc)
    except Exception as exc:
        log.exception("sync failed", extra={"event": "sync_failed", "source": config.name})
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        report.duration_s = round(time.monotonic() - start, 3)
    if report.error and report.index_version is None:
        # Nothing was published (permission changes already written stay: they are the export's current truth).
        report.added = report.updated = report.deleted = report.unchanged = 0
    _finish(report, settings)
    _say(progress, report.summary())
    return report


def _sync(
    config: SourceConfig,
    settings: Settings,
    writer: IndexWriter,
    full: bool,
    report: SyncReport,
    progress: ProgressLine | None,
    on_document: DocumentTick | None,
    reader: Reader | None = None,
) -> None:
    reader = reader or make_reader(config, settings)
    indexed = writer.indexed_documents(config.name)
    committed = {doc_id: doc.version for doc_id, doc in indexed.items()}
    seen: set[str] = set()
    kept_prefixes: list[str] = []
    done = 0
    next_milestone = 0.25
    with writer.begin() as tx:
        # Files are parsed in worker processes a few ahead, while this process embeds the ones before them.
        for item in resolve(reader.items(), workers_for(settings.parse_workers)):
            done += 1
            if isinstance(item, Skipped):
                report.skipped.append((item.path, item.reason))
                if item.doc_id:
                    seen.add(item.doc_id)  # present but unreadable now: keep the version already indexed
                if item.keep_prefix is not None:
                    kept_prefixes.append(item.keep_prefix)  # an unreadable folder: keep what it held
            elif item.id in seen:
                report.skipped.append((item.id, "duplicate document id in the export; kept the first"))
            else:
                seen.add(item.id)
                if item.id in indexed:
                    _update_readers(tx, item, indexed[item.id].readers, report)
                version = content_version(item, settings)
                old = committed.get(item.id)
                if old == version and not full:
                    report.unchanged += 1
                else:
                    written = _upsert(tx, writer, item, version)
                    if isinstance(written, str):
                        report.skipped.append((item.id, written))
                    else:
                        report.chunks_written += written
                        if old is None:
                            report.added += 1
                        else:
                            report.updated += 1
            if on_document:
                on_document(config.name, done, reader.total)
            if progress and reader.total and reader.total >= 100 and done / reader.total >= next_milestone:
                _say(progress, f"{config.name}: {done}/{reader.total} files read")
                next_milestone += 0.25
        if not seen and committed and not reader.may_be_empty:
            raise ExportUnavailable(
                f"export {config.path} has no readable documents; kept the {len(committed)} indexed documents"
            )
        for doc_id in sorted(committed.keys() - seen):
            if any(doc_id.startswith(prefix) for prefix in kept_prefixes):
                continue
            tx.delete(config.name, doc_id)
            report.deleted += 1
        if report.added or report.updated or report.deleted or report.permissions_changed:
            report.index_version = tx.commit()
        else:  # nothing changed: keep the index version, so cached answers stay valid
            tx.abort()
            report.index_version = writer.committed_generation()


def _update_readers(
    tx: SyncTransaction, doc: Document, old: tuple[str, ...] | None, report: SyncReport
) -> None:
    """Write the document's readers on its indexed points when they changed (before any re-embedding of it)."""
    new = doc.access.readers()
    if old is not None and sorted(old) == new:
        return
    if old is None and doc.access.public:  # written before permissions existed: public then and now
        tx.set_readers(doc.source, doc.id, new, invalidate=False)
        report.readers_backfilled += 1
        return
    tx.set_readers(doc.source, doc.id, new)
    report.permissions_changed += 1
    log.info(
        "document permissions changed",
        extra={"event": "permissions_changed", "source": doc.source, "doc_id": doc.id, "readers": len(new)},
    )


def _upsert(tx: SyncTransaction, writer: IndexWriter, doc: Document, version: str) -> int | str:
    """Write one document: its chunk count, or the reason it cannot be indexed when the fault is in the document."""
    try:
        return tx.upsert(doc, version)
    except Exception as exc:
        # Was it this document's text or the index? Chunking is deterministic and has no side effects, and upsert
        # chunks before it touches the store: if chunking fails again, nothing was written; skip just this one.
        try:
            writer.chunker.split(doc)
        except Exception:
            log.warning(
                "document could not be chunked", exc_info=True, extra={"source": doc.source, "doc_id": doc.id}
            )
            return f"could not be chunked ({type(exc).__name__}: {exc}); kept any indexed version"
        raise


def _say(progress: ProgressLine | None, line: str) -> None:
    if progress is None:
        return
    try:
        progress(line)
    except Exception:
        log.warning("sync progress callback failed", exc_info=True)


def _finish(report: SyncReport, settings: Settings) -> None:
    """Log the report, write it as JSON under data_dir/sync-reports, and count it in the metrics."""
    level = logging.WARNING if report.error else logging.INFO
    log.log(
        level,
        "sync finished" if report.ok else "sync failed",
        extra={
            "event": "sync",
            "source": report.source,
            "added": report.added,
            "updated": report.updated,
            "deleted": report.deleted,
            "unchanged": report.unchanged,
            "skipped": len(report.skipped),
            "chunks_written": report.chunks_written,
            "permissions_changed": report.permissions_changed,
            "duration_s": report.duration_s,
            "index_version": report.index_version,
            "error": report.error,
        },
    )
    try:
        _write_json(report, settings.data_dir / "sync-reports" / _file_safe(report.source))
    except OSError:
        log.warning("could not write the sync report", exc_info=True, extra={"source": report.source})
    try:
        from rag_core.feedback.metrics import observe_sync
    except ImportError:
        return
    observe_sync(report.source, report)


def _write_json(report: SyncReport, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    for stale in sorted(folder.glob("*.json"))[:-_KEPT_REPORTS]:
        stale.unlink(missing_ok=True)
    return path


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
