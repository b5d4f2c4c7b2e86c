"""Votes per document: 👍/👎 on answers credited to every document the answer cited, decayed with age.

A document's weight is `s / (|s| + prior)` for its decayed vote sum `s`: in (-1, 1), near ±1 only with many
agreeing votes, so one vote moves a ranking little. `rag_core.boost` turns weights into a bounded boost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Set
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rag_core.boost import DocKey
from rag_core.feedback.models import AnswerRecord, CitationRecord, VoteRecord
from rag_core.feedback.store import FeedbackStore, utc_naive
from rag_core.feedback.workflow import hidden_documents
from rag_core.settings import Settings

log = logging.getLogger(__name__)

DocVote = tuple[Iterable[DocKey], int, datetime]  # (documents the answer cited, +1/-1, when)


def aggregate(
    votes: Iterable[DocVote], now: datetime, half_life_days: float, prior: float
) -> dict[DocKey, float]:
    """Per-document weights in (-1, 1) from votes on answers, each vote halving in weight every half-life."""
    sums: dict[DocKey, float] = {}
    for docs, value, at in votes:
        age_days = max(0.0, (now - at).total_seconds() / 86400)
        decayed = value * 0.5 ** (age_days / half_life_days) if half_life_days > 0 else float(value)
        for key in set(docs):
            sums[key] = sums.get(key, 0.0) + decayed
    return {k: s / (abs(s) + prior) for k, s in sums.items() if s}


def logged_doc_votes(store: FeedbackStore) -> list[DocVote]:
    """Every vote on an answer that cited documents (abstentions' "closest sources" are not credited)."""
    stmt = (
        select(
            VoteRecord.answer_id,
            VoteRecord.value,
            VoteRecord.created_at,
            CitationRecord.source,
            CitationRecord.doc_id,
        )
        .join(AnswerRecord, AnswerRecord.id == VoteRecord.answer_id)
        .join(CitationRecord, CitationRecord.answer_id == VoteRecord.answer_id)
        .where(AnswerRecord.abstained.is_(False))
    )
    by_vote: dict[tuple[str, int, datetime], list[DocKey]] = {}
    with Session(store.engine) as session:
        for answer_id, value, at, source, doc_id in session.execute(stmt):
            by_vote.setdefault((answer_id, value, at), []).append((source, doc_id))
    return [(docs, value, at) for (_a, value, at), docs in by_vote.items()]


class StoredDocSignals:
    """`rag_core.boost.DocSignals` read from the query log, refreshed at most every `refresh_s` seconds.

    A failing database keeps the last good signals (and logs once per refresh): ranking never waits on it."""

    def __init__(self, store: FeedbackStore, settings: Settings) -> None:
        self.store = store
        self.half_life_days = settings.feedback_half_life_days
        self.prior = settings.feedback_prior_votes
        self.refresh_s = settings.feedback_refresh_s
        self._weights: dict[DocKey, float] = {}
        self._hidden: set[DocKey] = set()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Re-read at the next ranking (after a hide/unhide, so it takes effect at once)."""
        self._loaded_at = float("-inf")

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < self.refresh_s:
                return
            self._loaded_at = time.monotonic()
            try:
                self._hidden = hidden_documents(self.store)
                self._weights = aggregate(
                    logged_doc_votes(self.store), utc_naive(), self.half_life_days, self.prior
                )
            except SQLAlchemyError as exc:
                log.warning(
                    "reading document votes failed; ranking with the last ones read",
                    extra={"event": "doc_signals_failed", "error": type(exc).__name__},
                )

    def weights(self) -> Mapping[DocKey, float]:
        self._refresh()
        return self._weights

    def hidden(self) -> Set[DocKey]:
        self._refresh()
        return self._hidden
