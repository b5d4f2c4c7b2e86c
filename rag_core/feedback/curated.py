"""Curated answers: what a person answered, kept in the query log and synced into the index as a source.

Functions take the `FeedbackStore` (for its engine and its user hashing) and are synchronous, like the store.
The reader that turns these rows into documents is `connectors/curated.py`; docs/knowledge.md says who may
read them and how they are cited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from rag_core.feedback.models import CuratedAnswerRecord
from rag_core.feedback.store import FeedbackStore, utc_naive
from rag_core.permissions import Access, parse_principal

MAX_QUESTION_CHARS = 2000
MAX_ANSWER_CHARS = 20_000


class CuratedError(ValueError):
    """A curated answer cannot be saved as given (empty, too long, a bad principal, a bad import line)."""


@dataclass(slots=True)
class CuratedAnswer:
    """One saved answer, as the reader, the chat and the API see it. Times are naive UTC."""

    id: str
    question: str
    answer: str
    author: str
    created_at: datetime
    updated_at: datetime
    platform: str = "cli"
    channel: str = ""
    channel_name: str = ""
    thread_url: str = ""
    readers: list[str] | None = None  # None: everyone who may search the curated source
    source_answer_id: str | None = None
    cited: list[dict[str, str]] = field(default_factory=list)
    author_hash: str | None = None

    @property
    def access(self) -> Access:
        return Access.everyone() if self.readers is None else Access.only(self.readers)

    def age_days(self, now: datetime | None = None) -> int:
        return max(0, (utc_naive(now) - self.updated_at).days)

    def to_json(self) -> dict[str, Any]:
        """One JSONL line of `ragbot knowledge export` (the author's hashed id stays in the database)."""
        data = asdict(self)
        data.pop("author_hash")
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


def _of(r: CuratedAnswerRecord) -> CuratedAnswer:
    return CuratedAnswer(
        id=r.id,
        question=r.question,
        answer=r.answer,
        author=r.author,
        created_at=r.created_at,
        updated_at=r.updated_at,
        platform=r.platform,
        channel=r.channel,
        channel_name=r.channel_name,
        thread_url=r.thread_url,
        readers=list(r.readers) if r.readers is not None else None,
        source_answer_id=r.source_answer_id,
        cited=list(r.cited or []),
        author_hash=r.author_hash,
    )


def normalise_readers(readers: Iterable[str] | None) -> list[str] | None:
    """Principals as stored (`user:…`/`group:…`, lower-case, sorted); None for everyone."""
    if readers is None:
        return None
    try:
        return sorted({parse_principal(r) for r in readers if r.strip()})
    except ValueError as exc:
        raise CuratedError(str(exc)) from None


def _check(question: str, answer: str, author: str) -> tuple[str, str, str]:
    question, answer, author = question.strip(), answer.strip(), author.strip()
    if not question:
        raise CuratedError("a curated answer needs its question")
    if not answer:
        raise CuratedError("a curated answer needs the answer text")
    if len(question) > MAX_QUESTION_CHARS:
        raise CuratedError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    if len(answer) > MAX_ANSWER_CHARS:
        raise CuratedError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    return question, answer, author or "someone"


def add_answer(
    store: FeedbackStore,
    question: str,
    answer: str,
    *,
    author: str,
    author_id: str | None = None,
    platform: str = "cli",
    channel: str = "",
    channel_name: str = "",
    thread_url: str = "",
    readers: Iterable[str] | None = None,
    source_answer_id: str | None = None,
    cited: Sequence[dict[str, str]] = (),
    answer_id: str | None = None,
    at: datetime | None = None,
) -> CuratedAnswer:
    """Save a new answer; `author_id` (a platform user id, stored hashed) may edit or remove it later."""
    question, answer, author = _check(question, answer, author)
    now = utc_naive(at)
    record = CuratedAnswerRecord(
        id=answer_id or uuid.uuid4().hex[:16],
        question=question,
        answer=answer,
        author=author[:200],
        author_hash=store.hash_user(author_id) if author_id else None,
        platform=platform,
        channel=channel,
        channel_name=channel_name[:200],
        thread_url=thread_url,
        readers=normalise_readers(readers),
        source_answer_id=source_answer_id,
        cited=[dict(c) for c in cited],
        created_at=now,
        updated_at=now,
    )
    with Session(store.engine, expire_on_commit=False) as session, session.begin():
        session.add(record)
    return _of(record)


def get_answer(store: FeedbackStore, answer_id: str) -> CuratedAnswer | None:
    with Session(store.engine) as session:
        record = session.get(CuratedAnswerRecord, answer_id)
        return _of(record) if record is not None else None


def list_answers(store: FeedbackStore) -> list[CuratedAnswer]:
    """Every curated answer, oldest first."""
    return answers_in(store.engine)


def answers_in(engine: Engine) -> list[CuratedAnswer]:
    """Every curated answer in the query log behind `engine`, oldest first."""
    with Session(engine) as session:
        rows = session.scalars(select(CuratedAnswerRecord).order_by(CuratedAnswerRecord.created_at))
        return [_of(r) for r in rows]


def update_answer(
    store: FeedbackStore,
    answer_id: str,
    *,
    question: str | None = None,
    answer: str | None = None,
) -> CuratedAnswer | None:
    """Change an answer's question or text; None when there is no such answer."""
    with Session(store.engine, expire_on_commit=False) as session, session.begin():
        record = session.get(CuratedAnswerRecord, answer_id)
        if record is None:
            return None
        q, a, _ = _check(
            record.question if question is None else question,
            record.answer if answer is None else answer,
            record.author,
        )
        record.question, record.answer = q, a
        record.updated_at = utc_naive()
        return _of(record)


def remove_answer(store: FeedbackStore, answer_id: str) -> bool:
    """Delete an answer; False when there was none with that id."""
    with Session(store.engine) as session, session.begin():
        result = session.execute(delete(CuratedAnswerRecord).where(CuratedAnswerRecord.id == answer_id))
        return bool(getattr(result, "rowcount", 0))


def is_author(store: FeedbackStore, saved: CuratedAnswer, user_id: str) -> bool:
    return saved.author_hash is not None and saved.author_hash == store.hash_user(user_id)


# --- export / import --------------------------------------------------------------------------------------------


def export_lines(store: FeedbackStore) -> Iterator[str]:
    """Every answer as one JSON line, oldest first."""
    for saved in list_answers(store):
        yield json.dumps(saved.to_json(), ensure_ascii=False)


def import_lines(store: FeedbackStore, lines: Iterable[str]) -> tuple[int, int]:
    """Add (or replace, by id) answers from JSONL; (added, replaced). A bad line raises `CuratedError` naming it,
    before anything is written."""
    parsed: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            _check(str(data["question"]), str(data["answer"]), str(data.get("author", "")))
            normalise_readers(data.get("readers"))
        except (ValueError, KeyError, TypeError) as exc:
            raise CuratedError(f"line {n}: {exc}") from None
        parsed.append(data)
    added = replaced = 0
    for data in parsed:
        answer_id = str(data.get("id") or uuid.uuid4().hex[:16])[:32]
        if remove_answer(store, answer_id):
            replaced += 1
        else:
            added += 1
        created = _time(data.get("created_at"))
        saved = add_answer(
            store,
            str(data["question"]),
            str(data["answer"]),
            author=str(data.get("author", "")),
            platform=str(data.get("platform") or "import"),
            channel=str(data.get("channel") or ""),
            channel_name=str(data.get("channel_name") or ""),
            thread_url=str(data.get("thread_url") or ""),
            readers=data.get("readers"),
            source_answer_id=data.get("source_answer_id"),
            cited=data.get("cited") or [],
            answer_id=answer_id,
            at=created,
        )
        updated = _time(data.get("updated_at"))
        if updated is not None and updated != saved.updated_at:
            with Session(store.engine) as session, session.begin():
                record = session.get(CuratedAnswerRecord, saved.id)
                if record is not None:
                    record.updated_at = updated
    return added, replaced


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return utc_naive(datetime.fromisoformat(str(value)))
    except ValueError:
        raise CuratedError(f"not an ISO time: {value!r}") from None


# --- staleness ----------------------------------------------------------------------------------------------------


def older_than(saved: CuratedAnswer, days: int, now: datetime | None = None) -> bool:
    """Whether an answer was last saved more than `days` days ago (0: never)."""
    return days > 0 and utc_naive(now) - saved.updated_at > timedelta(days=days)


def changed_citations(saved: CuratedAnswer, versions: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """The pages the answer's thread cited whose indexed version differs now (or that are gone).

    `versions` is source → {doc_id: version} as the index holds them (`IndexWriter.document_versions`)."""
    changed = []
    for cite in saved.cited:
        current = versions.get(cite.get("source", ""), {}).get(cite.get("doc_id", ""))
        if cite.get("version") and current != cite.get("version"):
            changed.append(cite)
    return changed
