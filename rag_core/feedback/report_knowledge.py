"""The report's knowledge-loop figures: the review queue (questions abstained on and answers 👎'd, grouped by
similar question) and the curated answers' use, votes and staleness.

Grouping embeds the questions when the caller hands in an `embed` function (the engine's embedder) and joins a
question to the first group whose first question is at least `SIMILAR` cosine-close; without one, questions
group by their normalised wording.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from rag_core.feedback.curated import CuratedAnswer, answers_in, changed_citations, older_than
from rag_core.feedback.models import AnswerRecord, CitationRecord, MessageLink, VoteRecord
from rag_core.questions import normalise_question

SIMILAR = 0.8  # cosine between two questions' embeddings for them to count as the same question
MAX_GROUPS = 20
Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit-normalised rows


@dataclass(slots=True)
class ReviewGroup:
    """Similar questions the bot could not answer well: what an admin should answer (and save) first."""

    question: str  # the most recent wording
    count: int
    askers: int
    abstained: int
    down: int  # answers 👎'd
    last_asked: datetime
    link: str  # where the most recent one was asked ("" when the platform gives no link)
    wordings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CuratedUse:
    """One curated answer: how often it was cited in the window, its votes, its age and whether it is stale."""

    answer: CuratedAnswer
    uses: int
    up: int
    down: int
    old: bool  # older than RAG_KNOWLEDGE_MAX_AGE_DAYS
    changed: list[dict[str, str]]  # pages its thread cited that changed since it was saved


@dataclass(slots=True)
class KnowledgeFigures:
    review: list[ReviewGroup] = field(default_factory=list)
    curated: list[CuratedUse] = field(default_factory=list)
    versions_known: bool = False  # whether cited pages were compared with the index


def message_link(platform: str, channel: str, message_id: str) -> str:
    """A link to a chat message: Slack's archive URL (opens in the workspace); none for other platforms."""
    if platform == "slack" and channel and message_id:
        return f"https://slack.com/archives/{channel}/p{message_id.replace('.', '')}"
    return ""


def collect_knowledge(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    source: str,
    max_age_days: int = 0,
    embed: Embed | None = None,
    versions: dict[str, dict[str, str]] | None = None,
) -> KnowledgeFigures:
    """The review queue and the curated answers' figures for [start, end)."""
    in_window = (AnswerRecord.created_at >= start, AnswerRecord.created_at < end)
    with Session(engine) as session:
        rows = session.execute(
            select(
                AnswerRecord.id,
                AnswerRecord.created_at,
                AnswerRecord.platform,
                AnswerRecord.channel,
                AnswerRecord.user_hash,
                AnswerRecord.question,
                AnswerRecord.abstained,
            )
            .where(*in_window)
            .order_by(AnswerRecord.created_at)
        ).all()
        votes = session.execute(
            select(VoteRecord.answer_id, VoteRecord.value).join(AnswerRecord).where(*in_window)
        ).all()
        links = dict(
            session.execute(
                select(MessageLink.answer_id, MessageLink.message_id).join(AnswerRecord).where(*in_window)
            ).all()
        )
        cites = session.execute(
            select(CitationRecord.answer_id, CitationRecord.doc_id)
            .join(AnswerRecord)
            .where(*in_window, CitationRecord.source == source)
        ).all()
    downs: dict[str, int] = {}
    ups: dict[str, int] = {}
    for answer_id, value in votes:
        target = downs if value < 0 else ups
        target[answer_id] = target.get(answer_id, 0) + 1
    flagged = [r for r in rows if r.abstained or downs.get(r.id)]
    figures = KnowledgeFigures(versions_known=versions is not None)
    figures.review = _groups(flagged, downs, links, embed)

    used: dict[str, set[str]] = {}
    for answer_id, doc_id in cites:
        used.setdefault(doc_id, set()).add(answer_id)
    for saved in answers_in(engine):
        answers = used.get(saved.id, set())
        figures.curated.append(
            CuratedUse(
                answer=saved,
                uses=len(answers),
                up=sum(ups.get(a, 0) for a in answers),
                down=sum(downs.get(a, 0) for a in answers),
                old=older_than(saved, max_age_days),
                changed=changed_citations(saved, versions) if versions is not None else [],
            )
        )
    figures.curated.sort(key=lambda c: (-c.uses, c.answer.created_at))
    return figures


def _groups(
    rows: Sequence[Any], downs: dict[str, int], links: dict[str, str], embed: Embed | None
) -> list[ReviewGroup]:
    if not rows:
        return []
    keys = _cluster([r.question for r in rows], embed)
    groups: dict[int, list[Any]] = {}
    for key, row in zip(keys, rows, strict=True):
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        last = members[-1]
        wordings = list(dict.fromkeys(m.question for m in reversed(members)))
        out.append(
            ReviewGroup(
                question=last.question,
                count=len(members),
                askers=len({m.user_hash for m in members}),
                abstained=sum(1 for m in members if m.abstained),
                down=sum(downs.get(m.id, 0) for m in members),
                last_asked=last.created_at,
                link=message_link(last.platform, last.channel, links.get(last.id, "")),
                wordings=wordings,
            )
        )
    out.sort(key=lambda g: (-g.count, -g.askers, -g.last_asked.timestamp()))
    return out[:MAX_GROUPS]


def _cluster(questions: Sequence[str], embed: Embed | None) -> list[int]:
    """A group number per question: embedding neighbours (leader clustering), else the same wording."""
    if embed is None:
        seen: dict[str, int] = {}
        return [seen.setdefault(normalise_question(q), len(seen)) for q in questions]
    vectors = np.asarray(embed(list(questions)), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    leaders: list[int] = []
    keys: list[int] = []
    for i, vector in enumerate(vectors):
        best = -1
        if leaders:
            sims = vectors[leaders] @ vector
            j = int(np.argmax(sims))
            if sims[j] >= SIMILAR:
                best = j
        if best < 0:
            leaders.append(i)
            best = len(leaders) - 1
        keys.append(best)
    return keys


def index_versions(store: Any, sources: Sequence[str]) -> dict[str, dict[str, str]]:
    """source -> {doc_id: version} as the index serves them now (for "cited pages changed")."""
    from rag_core.store.base import Where

    gen = int(store.read_meta().get("generation", 0))
    out: dict[str, dict[str, str]] = {}
    for source in sources:
        where = Where(source=source, position=0, gen_lte=gen, dead_gt=gen)
        out[source] = {p["doc_id"]: p.get("version", "") for p in store.scroll(where, ["doc_id", "version"])}
    return out


# --- rendering rows -------------------------------------------------------------------------------------------

REVIEW_HEADERS = ["asked", "people", "I don't know", "👎", "last asked", "question", "link"]
CURATED_HEADERS = ["cited", "👍", "👎", "age", "by", "flags", "question", "id"]


def review_rows(figures: KnowledgeFigures) -> list[list[str]]:
    return [
        [
            str(g.count),
            str(g.askers),
            str(g.abstained),
            str(g.down),
            f"{g.last_asked:%Y-%m-%d}",
            g.question + (f" (+{len(g.wordings) - 1} similar)" if len(g.wordings) > 1 else ""),
            g.link,
        ]
        for g in figures.review
    ]


def curated_rows(figures: KnowledgeFigures) -> list[list[str]]:
    rows = []
    for c in figures.curated:
        flags = []
        if c.old:
            flags.append("old")
        if c.changed:
            flags.append("cited pages changed: " + ", ".join(d.get("doc_id", "") for d in c.changed))
        rows.append(
            [
                str(c.uses),
                str(c.up),
                str(c.down),
                f"{c.answer.age_days()} d",
                c.answer.author,
                "; ".join(flags),
                c.answer.question,
                c.answer.id,
            ]
        )
    return rows
