"""The answerability trade-off on a team's own questions: for each threshold, how often the check abstains on
unanswerable questions and wrongly on answerable ones, and the highest threshold a wrong-abstention budget allows.

`ragbot eval --qa` prints the curve; `ragbot calibrate --qa FILE` picks the threshold and writes
`RAG_ANSWERABILITY_MIN` into the `.env` the settings read (docs/answers.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_core.answer_eval import QAResult

GRID = tuple(round(0.02 * i, 2) for i in range(50))  # thresholds tried: 0.00 .. 0.98
ENV_NAME = "RAG_ANSWERABILITY_MIN"


@dataclass(slots=True)
class Point:
    threshold: float
    abstained_unanswerable: float | None  # None when the file holds no unanswerable question
    wrongly_abstained: float | None  # None when it holds no answerable question


def _abstains(result: QAResult, threshold: float) -> bool:
    """Would the answer abstain at `threshold`? Without a score it abstained (or not) before the check."""
    score = result.answer.answerability
    if score is None:
        return result.answer.abstained
    return score < threshold


def curve(results: Sequence[QAResult], grid: Sequence[float] = GRID) -> list[Point]:
    answerable = [r for r in results if r.case.answerable]
    unanswerable = [r for r in results if not r.case.answerable]

    def share(rs: list[QAResult], t: float) -> float | None:
        return sum(_abstains(r, t) for r in rs) / len(rs) if rs else None

    return [Point(t, share(unanswerable, t), share(answerable, t)) for t in grid]


def choose(points: Sequence[Point], max_wrong: float) -> Point:
    """The highest threshold whose wrongly-abstained share stays within `max_wrong` (0 if none does)."""
    safe = [p for p in points if p.wrongly_abstained is None or p.wrongly_abstained <= max_wrong + 1e-9]
    return max(safe, key=lambda p: p.threshold) if safe else Point(0.0, None, None)


def format_curve(points: Sequence[Point], marks: dict[float, str] | None = None) -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = ["  threshold   abstained on unanswerable   wrongly abstained on answerable"]
    for p in points:
        mark = (marks or {}).get(p.threshold, "")
        lines.append(
            f"  {p.threshold:>9.2f}   {cell(p.abstained_unanswerable):>25}   "
            f"{cell(p.wrongly_abstained):>31}  {mark}".rstrip()
        )
    return "\n".join(lines)


def write_env(path: Path, value: float) -> str:
    """Sets `RAG_ANSWERABILITY_MIN=value` in the env file (replacing the line, or appending it); returns the line."""
    line = f"{ENV_NAME}={value:g}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(rf"^\s*(export\s+)?{ENV_NAME}\s*=.*$", re.M)
    if pattern.search(text):
        text = pattern.sub(line, text)
    else:
        text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    path.write_text(text, encoding="utf-8")
    return line
