"""The curated-answers source: answers people saved (rag_core/feedback/curated.py), read as documents.

Each answer is one document: its question is the title, the answer the text, "Answered by Dana in #ops,
3 Dec 2026" the breadcrumb a citation shows, the thread it came from the link, and its readers the document's
access. The same pipeline ranks it as any page; nothing boosts it. The source is synced whenever an answer is
saved, edited or removed (`sync_curated`), and by `ragbot sync answers`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.base import Reader
from connectors.errors import ExportUnavailable, Skipped
from rag_core.settings import Settings, SourceConfig, curated_source
from rag_core.types import Document

if TYPE_CHECKING:
    from connectors.parse_pool import Deferred
    from connectors.sync import SyncReport
    from rag_core.feedback import FeedbackStore
    from rag_core.feedback.curated import CuratedAnswer
    from rag_core.indexing import IndexWriter
    from rag_core.kv import KeyValue

log = logging.getLogger(__name__)

STALE_NOTE = "may be out of date"
_SYNC_ATTEMPTS = 5  # a save that finds another sync of the source running waits for it this many times
_SYNC_WAIT_S = 1.0
_local_syncs = threading.Lock()  # one curated sync at a time in this process (saves come in bursts)


def when(at: datetime) -> str:
    """`3 Dec 2026`."""
    return f"{at.day} {at:%b %Y}"


def label(saved: CuratedAnswer, *, stale: bool = False) -> str:
    """The breadcrumb a citation shows: who answered, where, when."""
    where = f" in #{saved.channel_name}" if saved.channel_name else ""
    text = f"Answered by {saved.author}{where}, {when(saved.updated_at)}"
    return f"{text} ({STALE_NOTE})" if stale else text


def to_document(
    saved: CuratedAnswer, source: str, settings: Settings, now: datetime | None = None
) -> Document:
    from rag_core.feedback.curated import older_than

    stale = older_than(saved, settings.knowledge_max_age_days, now) and not settings.knowledge_expire
    return Document(
        id=saved.id,
        source=source,
        title=saved.question,
        text=saved.answer,
        url=saved.thread_url,
        breadcrumb=[label(saved, stale=stale)],
        author=saved.author,
        modified=saved.updated_at,
        size=len(saved.answer.encode()),
        access=saved.access,
    )


class CuratedReader(Reader):
    """Reads the saved answers from the query-log database (the given store, else the one the settings name)."""

    may_be_empty = True  # removing the last answer empties the source

    def __init__(self, config: SourceConfig, settings: Settings, store: FeedbackStore | None = None) -> None:
        super().__init__(config, settings)
        self.store = store

    def items(self) -> Iterator[Document | Skipped | Deferred]:
        from sqlalchemy.exc import SQLAlchemyError

        from rag_core.feedback import FeedbackStore
        from rag_core.feedback.curated import list_answers, older_than

        store = self.store or FeedbackStore.from_settings(self.settings)
        try:
            try:
                answers = list_answers(store)
            except SQLAlchemyError as exc:  # nothing is deleted from the index when the database is down
                raise ExportUnavailable(f"the query log cannot be read: {type(exc).__name__}") from None
        finally:
            if self.store is None:
                store.close()
        self.set_total(len(answers))
        expire = self.settings.knowledge_expire
        for saved in answers:
            if expire and older_than(saved, self.settings.knowledge_max_age_days):
                yield Skipped(saved.id, "expired (older than RAG_KNOWLEDGE_MAX_AGE_DAYS)")
                continue
            yield to_document(saved, self.config.name, self.settings)


def sync_curated(
    store: FeedbackStore, settings: Settings, writer: IndexWriter, kv: KeyValue | None = None
) -> SyncReport:
    """Sync just the curated source from `store` now (after a save, an edit or a removal)."""
    from connectors.sync import sync_source

    config = curated_source(settings)
    report = None
    with _local_syncs:
        for attempt in range(_SYNC_ATTEMPTS):
            report = sync_source(
                config, settings, writer, kv=kv, reader=CuratedReader(config, settings, store)
            )
            if report.error != "another sync of this source is running":
                break
            if attempt + 1 < _SYNC_ATTEMPTS:
                time.sleep(_SYNC_WAIT_S)  # another process syncs it; ours must still run after theirs
    assert report is not None
    if report.error:
        log.warning(
            "curated answers not synced", extra={"event": "curated_sync_failed", "error": report.error}
        )
    return report
