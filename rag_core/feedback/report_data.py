"""The admin report's figures, computed from the query log (no rendering here, so tests can check them exactly)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from rag_core.feedback.models import AnswerRecord, CitationRecord, VoteRecord
from rag_core.feedback.outcome import OUTCOMES
from rag_core.feedback.report_escalations import EscalationFigures, collect_escalations
from rag_core.feedback.report_knowledge import KnowledgeFigures, collect_knowledge
from rag_core.feedback.stats import TestResult, mann_whitney_u, percentile, rate, two_proportion_z_test
from rag_core.questions import normalise_question

# Questions the engine answered or abstained on: abstention rate and latency are over these (rate-limited ones
# never reached it; failed ones say nothing about the docs and have no meaningful latency).
REPLIED_OUTCOMES = ("answered", "abstained")
TOP_N = 10


@dataclass(slots=True)
class Figures:
    """Counts and rates of a group of answers (a day, a channel, an arm, or all)."""

    questions: int = 0
    by_outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    up: int = 0
    down: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return self.up + self.down

    @property
    def replied(self) -> int:
        return sum(self.by_outcome[o] for o in REPLIED_OUTCOMES)

    @property
    def thumbs_up_rate(self) -> float | None:
        return rate(self.up, self.votes)

    @property
    def abstention_rate(self) -> float | None:
        return rate(self.by_outcome["abstained"], self.replied)

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies_ms, 95)


@dataclass(slots=True)
class DayFigures(Figures):
    day: date = date.min


@dataclass(slots=True)
class ChannelFigures(Figures):
    platform: str = ""
    channel: str = ""


@dataclass(slots=True)
class SourceCount:
    """A cited document: in how many answers, and in how many 👎 answers (answers with at least one 👎)."""

    source: str
    title: str
    url: str
    answers: int = 0
    down_answers: int = 0


@dataclass(slots=True)
class CoverageGap:
    """A question the docs could not answer (the bot abstained), grouped by its normalised wording."""

    question: str  # the most recent wording
    count: int
    askers: int
    last_asked: datetime


@dataclass(slots=True)
class ArmFigures(Figures):
    arm: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ArmComparison:
    """One arm against the control (the first arm by name), with two-sided p-values."""

    control: str
    arm: str
    thumbs_up: TestResult | None  # two-proportion z-test on 👍 / votes
    abstention: TestResult | None  # two-proportion z-test on abstained / answered+abstained
    latency: TestResult | None  # Mann–Whitney U on end-to-end latencies


@dataclass(slots=True)
class ReportData:
    start: datetime  # naive UTC, inclusive
    end: datetime  # naive UTC, exclusive
    total: Figures
    days: list[DayFigures]
    channels: list[ChannelFigures]
    top_sources: list[SourceCount]
    down_sources: list[SourceCount]
    gaps: list[CoverageGap]
    arms: list[ArmFigures]
    comparisons: list[ArmComparison]
    escalations: EscalationFigures = field(default_factory=EscalationFigures)  # hand-offs to a person
    knowledge: KnowledgeFigures = field(default_factory=KnowledgeFigures)  # review queue, curated answers


def report_window(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) in naive UTC: the last `days` calendar days (UTC), today included."""
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    start = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time())
    return start, now + timedelta(microseconds=1)


def _add(figures: Figures, row: Any, up: int, down: int) -> None:
    figures.questions += 1
    figures.by_outcome[row.outcome] = figures.by_outcome.get(row.outcome, 0) + 1
    figures.up += up
    figures.down += down
    figures.cost_usd += row.cost_usd
    figures.cache_hits += int(row.cache_hit)
    if row.outcome in REPLIED_OUTCOMES:
        figures.latencies_ms.append(row.latency_ms)


def collect(
    engine: Engine, days: int, now: datetime | None = None, *, knowledge: dict[str, Any] | None = None
) -> ReportData:
    """All figures of the report for the last `days` days of the query log. `knowledge`: keyword arguments of
    `collect_knowledge` (curated source name, max age, an embed function, the index's document versions)."""
    start, end = report_window(days, now)
    in_window = (AnswerRecord.created_at >= start, AnswerRecord.created_at < end)
    with engine.connect() as conn:
        answers = conn.execute(
            select(
                AnswerRecord.id,
                AnswerRecord.created_at,
                AnswerRecord.platform,
                AnswerRecord.channel,
                AnswerRecord.user_hash,
                AnswerRecord.question,
                AnswerRecord.outcome,
                AnswerRecord.cost_usd,
                AnswerRecord.cache_hit,
                AnswerRecord.latency_ms,
                AnswerRecord.arm,
                AnswerRecord.overrides,
            )
            .where(*in_window)
            .order_by(AnswerRecord.created_at)
        ).all()
        votes = conn.execute(
            select(VoteRecord.answer_id, VoteRecord.value).join(AnswerRecord).where(*in_window)
        ).all()
        citations = conn.execute(
            select(
                CitationRecord.answer_id,
                CitationRecord.source,
                CitationRecord.doc_id,
                CitationRecord.title,
                CitationRecord.url,
            )
            .join(AnswerRecord)
            .where(*in_window)
            .order_by(AnswerRecord.created_at)
        ).all()

    ups: Counter[str] = Counter()
    downs: Counter[str] = Counter()
    for answer_id, value in votes:
        (ups if value > 0 else downs)[answer_id] += 1

    total = Figures()
    days_by_date = {
        (start.date() + timedelta(days=i)): DayFigures(day=start.date() + timedelta(days=i))
        for i in range(days)
    }
    channels: dict[tuple[str, str], ChannelFigures] = {}
    arms: dict[str, ArmFigures] = {}
    gap_rows: dict[str, list[Any]] = defaultdict(list)
    for row in answers:
        up, down = ups[row.id], downs[row.id]
        _add(total, row, up, down)
        _add(days_by_date[row.created_at.date()], row, up, down)
        key = (row.platform, row.channel)
        _add(
            channels.setdefault(key, ChannelFigures(platform=row.platform, channel=row.channel)),
            row,
            up,
            down,
        )
        if row.arm is not None:
            arm = arms.setdefault(row.arm, ArmFigures(arm=row.arm))
            _add(arm, row, up, down)
            arm.overrides = dict(row.overrides or {})  # rows are in time order: the latest wins
        if row.outcome == "abstained":
            gap_rows[normalise_question(row.question)].append(row)

    sources: dict[tuple[str, str], SourceCount] = {}
    seen: set[tuple[str, tuple[str, str]]] = set()
    for answer_id, source, doc_id, title, url in citations:
        key = (source, doc_id or url or title)
        if (answer_id, key) in seen:  # a document cited twice in one answer counts once
            continue
        seen.add((answer_id, key))
        count = sources.setdefault(key, SourceCount(source=source, title=title, url=url))
        count.title, count.url = title, url  # latest wins
        count.answers += 1
        count.down_answers += int(downs[answer_id] > 0)

    gaps = [
        CoverageGap(
            question=rows[-1].question.strip(),
            count=len(rows),
            askers=len({r.user_hash for r in rows}),
            last_asked=rows[-1].created_at,
        )
        for rows in gap_rows.values()
    ]
    gaps.sort(key=lambda g: (-g.count, -g.askers, -g.last_asked.timestamp()))

    arm_list = [arms[name] for name in sorted(arms)]
    return ReportData(
        start=start,
        end=end,
        total=total,
        days=list(days_by_date.values()),
        channels=sorted(channels.values(), key=lambda c: (-c.questions, c.platform, c.channel)),
        top_sources=sorted(sources.values(), key=lambda s: (-s.answers, s.title))[:TOP_N],
        down_sources=sorted(
            (s for s in sources.values() if s.down_answers),
            key=lambda s: (-s.down_answers, -s.answers, s.title),
        )[:TOP_N],
        gaps=gaps[:TOP_N],
        arms=arm_list,
        comparisons=[compare(arm_list[0], other) for other in arm_list[1:]],
        escalations=collect_escalations(engine, start, end),
        knowledge=collect_knowledge(engine, start, end, **{"source": "answers", **(knowledge or {})}),
    )


def compare(control: ArmFigures, arm: ArmFigures) -> ArmComparison:
    return ArmComparison(
        control=control.arm,
        arm=arm.arm,
        thumbs_up=two_proportion_z_test(arm.up, arm.votes, control.up, control.votes),
        abstention=two_proportion_z_test(
            arm.by_outcome["abstained"], arm.replied, control.by_outcome["abstained"], control.replied
        ),
        latency=mann_whitney_u(arm.latencies_ms, control.latencies_ms),
    )
