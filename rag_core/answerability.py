"""Answerability of a quoted-passage answer: does the best text found actually hold what the question asks?

The relevance threshold only sees topical similarity, so in a team wiki a question whose answer is absent but whose
topic is indexed ("What is the per-diem for Japan?" next to the travel policy) is answered with another page's
passage. This score looks at what the question asks for: its content words, numbers and names, and how many of
them the quoted sentences and the top sources contain. A logistic model over these features, fitted on the tune
half of eval/handbook-qa (see eval/handbook-qa/calibrate.py), gives a probability; the engine abstains under
`answerability_min`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rag_core.grounding import content_terms
from rag_core.sparse import Bm25Encoder
from rag_core.types import Candidate

# Fitted on eval/handbook-qa/dev.jsonl, split "tune" (eval/handbook-qa/calibrate.py prints these).
WEIGHTS: dict[str, float] = {
    "bias": -3.693,
    "cov_quoted": 1.639,
    "cov_top": 2.148,
    "cov_blocks": 0.972,
    "missing_numbers": -0.249,
    "missing_names": -1.846,
    "relevance": 1.052,
}

_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*\b")
_NOT_NAMES = {
    "I",
    "Sourcegraph",
    "What",
    "How",
    "Who",
    "When",
    "Where",
    "Which",
    "Why",
    "Is",
    "Are",
    "Do",
    "Does",
}


def quoted_sentences(extractive_text: str) -> list[str]:
    """The `> sentence [n]` lines of a quoted-passage answer."""
    return [line[2:] for line in extractive_text.splitlines() if line.startswith("> ")]


def _coverage(wanted: set[int], have: set[int]) -> float:
    return len(wanted & have) / len(wanted) if wanted else 1.0


def _missing(items: set[str], text: str) -> float:
    lowered = text.lower()
    return sum(1 for item in items if item.lower() not in lowered) / len(items) if items else 0.0


def features(
    question: str,
    quoted: Sequence[str],
    blocks: Sequence[str],
    kept: Sequence[Candidate],
    sparse: Bm25Encoder,
) -> dict[str, float]:
    wanted = content_terms(question, sparse)
    top = blocks[0] if blocks else ""
    everything = "\n".join(blocks)
    names = {m.group(0) for m in _NAME.finditer(question)} - _NOT_NAMES
    relevance = max((c.relevance or 0.0 for c in kept), default=0.0)
    return {
        "cov_quoted": _coverage(wanted, content_terms(" ".join(quoted), sparse)),
        "cov_top": _coverage(wanted, content_terms(top, sparse)),
        "cov_blocks": _coverage(wanted, content_terms(everything, sparse)),
        "missing_numbers": _missing(set(_NUMBER.findall(question)), everything),
        "missing_names": _missing(names, everything),
        "relevance": float(relevance),
    }


def score(values: dict[str, float], weights: dict[str, float] = WEIGHTS) -> float:
    z = weights["bias"] + sum(weights[name] * value for name, value in values.items())
    return 1.0 / (1.0 + math.exp(-z))


def answerability(
    question: str,
    quoted: Sequence[str],
    blocks: Sequence[str],
    kept: Sequence[Candidate],
    sparse: Bm25Encoder,
) -> float:
    """Probability that the quoted passages answer the question (calibrated on the tune split)."""
    return score(features(question, quoted, blocks, kept, sparse))
