"""Escalations to a person and hidden documents, kept in the query log beside the answers they concern.

Functions take the `FeedbackStore` (for its engine and its user hashing) and are synchronous, like the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rag_core.feedback.models import AnswerRecord, EscalationRecord, HiddenDocument
from rag_core.feedback.store import FeedbackStore, UnknownAnswer, utc_naive

DocKey = tuple[str, str]  # (source, doc_id)


@dataclass(slots=True)
class Escalation:
    answer_id: str
    platform: str
    channel: str
    question: str
    targets: list[str]
    created_at: datetime
    resolved_at: datetime | None


def escalate(
    store: FeedbackStore,
    answer_id: str,
    *,
    platform: str,
    channel: str,
    targets: Sequence[str],
    user: str,
    at: datetime | None = None,
) -> bool:
    """Record a hand-off of an answer's question to people; False when it was escalated already (still open or
    resolved: one escalation per answer)."""
    with Session(store.engine) as session:
        if session.get(AnswerRecord, answer_id) is None:
            raise UnknownAnswer(f"no answer with id {answer_id!r} in the query log")
        if session.get(EscalationRecord, answer_id) is not None:
            return False
        session.add(
            EscalationRecord(
                answer_id=answer_id,
                platform=platform,
                channel=channel,
                targets=list(targets),
                asked_by=store.hash_user(user),
                created_at=utc_naive(at),
            )
        )
        try:
            session.commit()
        except IntegrityError:  # two clicks at once: the other one recorded it
            return False
    return True


def reopen_escalation(store: FeedbackStore, answer_id: str, *, user: str, at: datetime | None = None) -> bool:
    """Open a resolved hand-off again (the asker still needs help); False when there is none resolved."""
    with Session(store.engine) as session, session.begin():
        record = session.get(EscalationRecord, answer_id)
        if record is None or record.resolved_at is None:
            return False
        record.resolved_at = None
        record.resolved_by = None
        record.message_id = None
        record.asked_by = store.hash_user(user)
        record.created_at = utc_naive(at)
    return True


def withdraw_escalation(store: FeedbackStore, answer_id: str) -> None:
    """Forget a hand-off whose tag message could not be delivered: nobody was asked, so nothing is recorded."""
    with Session(store.engine) as session, session.begin():
        session.execute(delete(EscalationRecord).where(EscalationRecord.answer_id == answer_id))


def set_escalation_message(store: FeedbackStore, answer_id: str, message_id: str) -> None:
    with Session(store.engine) as session, session.begin():
        record = session.get(EscalationRecord, answer_id)
        if record is not None:
            record.message_id = message_id


def get_escalation(store: FeedbackStore, answer_id: str) -> Escalation | None:
    with Session(store.engine) as session:
        row = session.execute(
            select(EscalationRecord, AnswerRecord.question)
            .join(AnswerRecord, AnswerRecord.id == EscalationRecord.answer_id)
            .where(EscalationRecord.answer_id == answer_id)
        ).first()
    if row is None:
        return None
    record, question = row
    return Escalation(
        record.answer_id,
        record.platform,
        record.channel,
        question,
        list(record.targets),
        record.created_at,
        record.resolved_at,
    )


def resolve_escalation(store: FeedbackStore, answer_id: str, *, user: str) -> bool:
    """Close an open escalation; False when there is none open."""
    with Session(store.engine) as session, session.begin():
        record = session.get(EscalationRecord, answer_id)
        if record is None or record.resolved_at is not None:
            return False
        record.resolved_at = utc_naive()
        record.resolved_by = store.hash_user(user)
    return True


# --- hidden documents ---------------------------------------------------------------------------------------


def hide_document(store: FeedbackStore, source: str, doc_id: str, *, title: str, user: str) -> bool:
    """Hide a document from every answer; False when it was hidden already."""
    with Session(store.engine) as session:
        if session.get(HiddenDocument, (source, doc_id)) is not None:
            return False
        session.add(
            HiddenDocument(
                source=source,
                doc_id=doc_id,
                title=title,
                hidden_by=store.hash_user(user),
                hidden_at=utc_naive(),
            )
        )
        try:
            session.commit()
        except IntegrityError:
            return False
    return True


def unhide_document(store: FeedbackStore, source: str, doc_id: str) -> bool:
    """Let a hidden document be cited again; False when it was not hidden."""
    with Session(store.engine) as session, session.begin():
        stmt = delete(HiddenDocument).where(HiddenDocument.source == source, HiddenDocument.doc_id == doc_id)
        return bool(getattr(session.execute(stmt), "rowcount", 0))  # a CursorResult for a DELETE


def hidden_documents(store: FeedbackStore) -> set[DocKey]:
    with Session(store.engine) as session:
        return {(r.source, r.doc_id) for r in session.execute(select(HiddenDocument)).scalars()}
