"""`ragbot eval --from-feedback`: a QA file for `ragbot eval --qa` made from the query log's votes.

An answer whose votes sum above zero becomes a case: answerable with its cited documents as gold, or, when the
bot abstained and people agreed, an unanswerable case. Answers whose votes sum below zero are listed for review
(a person decides what the right answer or source was); they are not written as cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from rag_core.feedback.models import AnswerRecord, VoteRecord
from rag_core.feedback.store import FeedbackStore, utc_naive


@dataclass(slots=True)
class Review:
    """A 👎 answer for a person to look at."""

    answer_id: str
    question: str
    cited: list[str]
    net_votes: int


def voted_answers(store: FeedbackStore, days: int) -> list[tuple[AnswerRecord, int]]:
    """Answers of the last `days` days with their net vote, oldest first (the latest of repeated questions wins)."""
    since = utc_naive() - timedelta(days=days)
    net = func.sum(VoteRecord.value).label("net")
    stmt = (
        select(AnswerRecord, net)
        .join(VoteRecord, VoteRecord.answer_id == AnswerRecord.id)
        .where(AnswerRecord.created_at >= since, AnswerRecord.outcome.in_(["answered", "abstained"]))
        .group_by(AnswerRecord.id)
        .order_by(AnswerRecord.created_at)
        .options(selectinload(AnswerRecord.citations))
    )
    with Session(store.engine) as session:
        return [(row[0], int(row[1] or 0)) for row in session.execute(stmt)]


def export_cases(store: FeedbackStore, out: Path, days: int = 90) -> tuple[int, list[Review]]:
    """Write 👍 answers to `out` as QA cases; return how many were written and the 👎 answers to review."""
    cases: dict[str, dict[str, Any]] = {}
    reviews: list[Review] = []
    for record, net in voted_answers(store, days):
        cited = [c.doc_id or c.url for c in record.citations]
        if net > 0:
            cases[record.question.strip().lower()] = {
                "question": record.question,
                "answerable": not record.abstained,
                "gold": [] if record.abstained else cited,
                "from_answer": record.id,
            }
        elif net < 0:
            reviews.append(Review(record.id, record.question, cited, net))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases.values()), encoding="utf-8"
    )
    return len(cases), reviews
