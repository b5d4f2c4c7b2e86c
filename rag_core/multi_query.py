"""Multi-query retrieval: alternative phrasings (and optionally a HyDE passage) searched and fused by RRF."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag_core.types import Candidate

ALTERNATIVES_PROMPT = """Write {n} different search queries that would find the documents answering the user's \
question: other phrasings, synonyms a wiki might use, or the sub-questions it contains. One per line, no numbering, \
nothing else."""

HYDE_PROMPT = """Write a short passage (three sentences) that could appear in a team's internal handbook and \
answers the question. Invent plausible specifics if needed; it is only used to search."""

ALTERNATIVE_TOKENS = 40  # output cap per phrasing
HYDE_TOKENS = 150
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def alternatives_messages(question: str, n: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": ALTERNATIVES_PROMPT.format(n=n)},
        {"role": "user", "content": question},
    ]


def parse_alternatives(reply: str | None, question: str, n: int) -> list[str]:
    """Up to `n` distinct phrasings from the model's lines, none equal to the question."""
    seen = {question.strip().lower()}
    out: list[str] = []
    for line in (reply or "").splitlines():
        query = _NUMBERING.sub("", line).strip().strip('"')
        if query and query.lower() not in seen:
            seen.add(query.lower())
            out.append(query)
    return out[:n]


def hyde_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": HYDE_PROMPT}, {"role": "user", "content": question}]


def fuse_candidates(rankings: Sequence[Sequence[Candidate]], k: int, limit: int) -> list[Candidate]:
    """Reciprocal rank fusion of candidate lists by chunk. A chunk keeps the scores of the first list that found
    it (the original question's list comes first, so its dense and BM25 scores win); `fused_score` is the RRF sum."""
    first: dict[str, Candidate] = {}
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, cand in enumerate(ranking, start=1):
            point = cand.chunk.point_id
            first.setdefault(point, cand)
            scores[point] = scores.get(point, 0.0) + 1.0 / (k + rank)
    fused = sorted(scores, key=lambda p: -scores[p])[:limit]
    for point in fused:
        first[point].fused_score = scores[point]
    return [first[p] for p in fused]
