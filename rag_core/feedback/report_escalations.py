"""The report's hand-off figures: escalations per channel and the escalated questions (a coverage-gap signal
beside the abstentions: questions people wanted a person for)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from rag_core.feedback.models import AnswerRecord, EscalationRecord

TOP_QUESTIONS = 20


@dataclass(slots=True)
class ChannelEscalations:
    platform: str
    channel: str
    escalated: int = 0
    resolved: int = 0


@dataclass(slots=True)
class EscalatedQuestion:
    at: datetime
    platform: str
    channel: str
    question: str
    abstained: bool  # the bot had said "I don't know"
    resolved: bool


@dataclass(slots=True)
class EscalationFigures:
    channels: list[ChannelEscalations] = field(default_factory=list)
    questions: list[EscalatedQuestion] = field(default_factory=list)  # newest first

    @property
    def total(self) -> int:
        return sum(c.escalated for c in self.channels)


def collect_escalations(engine: Engine, start: datetime, end: datetime) -> EscalationFigures:
    """Escalations made in [start, end)."""
    stmt = (
        select(EscalationRecord, AnswerRecord.question, AnswerRecord.abstained)
        .join(AnswerRecord, AnswerRecord.id == EscalationRecord.answer_id)
        .where(EscalationRecord.created_at >= start, EscalationRecord.created_at < end)
        .order_by(EscalationRecord.created_at.desc())
    )
    figures = EscalationFigures()
    channels: dict[tuple[str, str], ChannelEscalations] = {}
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    for row in rows:
        platform, channel = row.platform, row.channel
        c = channels.setdefault((platform, channel), ChannelEscalations(platform, channel))
        c.escalated += 1
        c.resolved += row.resolved_at is not None
        figures.questions.append(
            EscalatedQuestion(
                row.created_at,
                platform,
                channel,
                row.question,
                bool(row.abstained),
                row.resolved_at is not None,
            )
        )
    figures.channels = sorted(channels.values(), key=lambda c: (-c.escalated, c.platform, c.channel))
    figures.questions = figures.questions[:TOP_QUESTIONS]
    return figures


def text_rows(figures: EscalationFigures) -> tuple[list[list[str]], list[list[str]]]:
    """(per-channel rows, escalated-question rows) for the terminal and HTML tables."""
    per_channel = [[c.platform, c.channel, str(c.escalated), str(c.resolved)] for c in figures.channels]
    questions = [
        [
            f"{q.at:%Y-%m-%d}",
            q.channel,
            "yes" if q.abstained else "no",
            "yes" if q.resolved else "open",
            q.question,
        ]
        for q in figures.questions
    ]
    return per_channel, questions


CHANNEL_HEADERS = ["platform", "channel", "escalated", "resolved"]
QUESTION_HEADERS = ["asked", "channel", "bot abstained", "resolved", "question"]
