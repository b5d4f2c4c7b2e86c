"""The query log's tables as SQLAlchemy 2 ORM models; the schema itself is created by the migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class AnswerRecord(Base):
    """One question asked and what the bot did with it. Times are naive UTC."""

    __tablename__ = "answers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(128), index=True)
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer_text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(
        String(16), index=True
    )  # answered|abstained|error|rate_limited|undelivered|busy|cancelled
    abstained: Mapped[bool] = mapped_column(Boolean)
    extractive: Mapped[bool] = mapped_column(Boolean)
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)  # end to end
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON)  # per stage
    model: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    arm: Mapped[str | None] = mapped_column(String(64), index=True)  # A/B arm name
    overrides: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the engine overrides of that arm

    citations: Mapped[list[CitationRecord]] = relationship(
        back_populates="answer", cascade="all, delete-orphan", order_by="CitationRecord.n"
    )


class CitationRecord(Base):
    """A numbered source shown under an answer, with the score it had."""

    __tablename__ = "answer_citations"

    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(128), index=True)
    doc_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    heading_path: Mapped[list[str]] = mapped_column(JSON)
    snippet: Mapped[str] = mapped_column(Text)
    # Who may read the cited document (`Citation.readers`); NULL for rows logged before permissions existed,
    # when every chat answer cited only documents visible to everyone.
    readers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)

    answer: Mapped[AnswerRecord] = relationship(back_populates="citations")


class MessageLink(Base):
    """Which platform message carries which answer, so a reaction on it finds the answer."""

    __tablename__ = "answer_messages"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)


class VoteRecord(Base):
    """A 👍 (+1) or 👎 (-1); one per (answer, voter), a new vote replaces the old."""

    __tablename__ = "votes"

    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    user_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime())


class EscalationRecord(Base):
    """A "Get help from a person" on an answer: who was tagged, and when (and by whom) it was resolved."""

    __tablename__ = "escalations"

    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(128), index=True)
    targets: Mapped[list[str]] = mapped_column(JSON)  # platform user/group ids that were tagged
    asked_by: Mapped[str] = mapped_column(String(64))  # hashed id of who pressed the button
    message_id: Mapped[str | None] = mapped_column(String(128))  # the tagging message
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(64))  # hashed id


class HiddenDocument(Base):
    """A document an admin hid: never cited until unhidden."""

    __tablename__ = "hidden_documents"

    source: Mapped[str] = mapped_column(String(128), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    hidden_by: Mapped[str] = mapped_column(String(64))  # hashed id
    hidden_at: Mapped[datetime] = mapped_column(DateTime())


class CuratedAnswerRecord(Base):
    """An answer a person gave, saved to be cited from then on (the `curated` source; see docs/knowledge.md)."""

    __tablename__ = "curated_answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))  # the name shown: "Answered by Dana"
    author_hash: Mapped[str | None] = mapped_column(
        String(64)
    )  # hashed platform id of who saved it (edit right)
    platform: Mapped[str] = mapped_column(String(32))  # slack | discord | cli | api
    channel: Mapped[str] = mapped_column(String(128))  # channel id ("" from the terminal)
    channel_name: Mapped[str] = mapped_column(String(200))  # "ops" for "in #ops"
    thread_url: Mapped[str] = mapped_column(Text)  # link to the thread it came from ("" when none)
    readers: Mapped[list[str] | None] = mapped_column(JSON)  # None: everyone who may search the source
    source_answer_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the bot answer it resolves
    cited: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{source, doc_id, version}] when saved
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime())
