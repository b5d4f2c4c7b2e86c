"""Answer-quality eval (`ragbot eval --qa FILE.jsonl`): asks the configured index each question and scores the
answers, not only the rankings.

Each line: {"question", "answerable", "gold": [doc ids or URLs], "answer": optional reference text}; an optional
"split" lets a file hold a tune half and a report half. Gold counts as cited when a citation's doc id or URL is
in `gold`; abstained answers cite nothing (their "closest sources" are not claims).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_core.errors import UserError
from rag_core.types import Answer


@dataclass(slots=True)
class QACase:
    question: str
    answerable: bool
    gold: list[str] = field(default_factory=list)
    answer: str | None = None
    split: str | None = None


@dataclass(slots=True)
class QAResult:
    case: QACase
    answer: Answer
    latency_ms: float


def load_cases(path: Path, split: str | None = None, limit: int = 0) -> list[QACase]:
    """The file's cases (only `split`'s when given); a malformed line is a `UserError` naming it."""
    if not path.is_file():
        raise UserError(f"QA file not found: {path}")
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            case = QACase(
                question=str(data["question"]),
                answerable=bool(data["answerable"]),
                gold=[str(g) for g in data.get("gold") or []],
                answer=data.get("answer") or None,
                split=data.get("split"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f'{path}:{number}: not a QA case ({type(exc).__name__}: {exc}); expected {{"question", "answerable", "gold"}}'
            ) from None
        if split is None or case.split == split:
            cases.append(case)
    if split is not None and not cases:
        raise UserError(f"{path} has no cases with split {split!r}")
    return cases[:limit] if limit else cases


def run_cases(
    ask: Callable[[str], Answer], cases: Iterable[QACase], progress: Callable[[int], None] | None = None
) -> list[QAResult]:
    results = []
    for i, case in enumerate(cases, start=1):
        started = time.perf_counter()
        answer = ask(case.question)
        results.append(QAResult(case, answer, (time.perf_counter() - started) * 1000))
        if progress:
            progress(i)
    return results


def _norm(text: str) -> str:
    return re.sub(r"[\s*_`]+", " ", text.lower()).strip()


def _cites_gold(answer: Answer, gold: list[str], first_only: bool = False) -> bool:
    citations = answer.citations[:1] if first_only else answer.citations
    wanted = set(gold)
    return not answer.abstained and any(c.doc_id in wanted or c.url in wanted for c in citations)


def _share(hits: float, total: int) -> float:
    return hits / total if total else 0.0


def score(results: list[QAResult]) -> dict[str, Any]:
    answerable = [r for r in results if r.case.answerable]
    unanswerable = [r for r in results if not r.case.answerable]
    with_reference = [r for r in answerable if r.case.answer]
    answered = [r for r in results if not r.answer.abstained]
    latencies = np.asarray([r.latency_ms for r in results]) if results else np.zeros(1)
    cost = sum(r.answer.cost_usd for r in results)
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "gold_cited_any": _share(
            sum(_cites_gold(r.answer, r.case.gold) for r in answerable), len(answerable)
        ),
        "gold_cited_first": _share(
            sum(_cites_gold(r.answer, r.case.gold, first_only=True) for r in answerable), len(answerable)
        ),
        "abstained_unanswerable": _share(sum(r.answer.abstained for r in unanswerable), len(unanswerable)),
        "wrongly_abstained": _share(sum(r.answer.abstained for r in answerable), len(answerable)),
        "reference_contained": _share(
            sum(
                _norm(r.case.answer or "") in _norm(r.answer.text)
                for r in with_reference
                if not r.answer.abstained
            ),
            len(with_reference),
        ),
        "with_reference": len(with_reference),
        "citations_per_answer": _share(sum(len(r.answer.citations) for r in answered), len(answered)),
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "cost_usd": cost,
        "cost_per_question_usd": _share(cost, len(results)) if results else 0.0,
    }


def format_scores(s: dict[str, Any], title: str) -> str:
    a, u = s["answerable"], s["unanswerable"]
    rows = [
        ("gold cited (any rank)", f"{s['gold_cited_any']:.3f}", f"of {a} answerable"),
        ("gold cited first", f"{s['gold_cited_first']:.3f}", f"of {a} answerable"),
        ("abstained on unanswerable", f"{s['abstained_unanswerable']:.3f}", f"of {u} unanswerable"),
        ("wrongly abstained on answerable", f"{s['wrongly_abstained']:.3f}", f"of {a} answerable"),
        (
            "reference contained",
            f"{s['reference_contained']:.3f}",
            f"of {s['with_reference']} with a reference",
        ),
        ("citations per answer", f"{s['citations_per_answer']:.2f}", "answers that did not abstain"),
        ("latency p50 / p95", f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f} ms", "end to end"),
        ("cost", f"${s['cost_usd']:.5f}", f"${s['cost_per_question_usd']:.6f} per question"),
    ]
    lines = [title]
    lines += [f"  {name:<33}{value:>16}   {note}" for name, value, note in rows]
    return "\n".join(lines)
