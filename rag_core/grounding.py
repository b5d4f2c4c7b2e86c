"""Grounded LLM answers: the no-answer sentinel, and a cheap support test of every cited sentence.

A sentence's citation `[n]` is kept when source n holds enough of the sentence's content words (BM25 terms:
stemmed, stopwords removed); otherwise the marker is dropped. An answer left with no supported citation is not
shown as the model wrote it (the engine quotes passages instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from rag_core.sparse import Bm25Encoder

NO_ANSWER = "NO_ANSWER_IN_SOURCES"
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def is_no_answer(text: str) -> bool:
    """The model replied with the sentinel (alone, give or take quotes, backticks and a full stop)."""
    return text.strip().strip("`*\"'. ").upper() == NO_ANSWER


def without_sentinel(text: str) -> str:
    """A longer reply that also contains the sentinel keeps its other sentences."""
    return re.sub(rf"\s*`?{NO_ANSWER}`?\.?", "", text).strip()


@dataclass(slots=True)
class Grounded:
    text: str  # the answer with unsupported citation markers removed
    supported: set[int]  # source numbers cited by at least one supported sentence
    dropped: int  # citation markers removed


def content_terms(text: str, sparse: Bm25Encoder) -> set[int]:
    return set(_content_terms(sparse, text))


@lru_cache(
    maxsize=4096
)  # the same sources come back answer after answer (their terms are read several times each)
def _content_terms(sparse: Bm25Encoder, text: str) -> frozenset[int]:
    return frozenset(sparse.encode_query(_CITATION.sub(" ", text)).indices)


def check_citations(
    text: str, sources: Mapping[int, str], sparse: Bm25Encoder, min_overlap: float
) -> Grounded:
    """Keep each `[n]` whose source holds at least `min_overlap` of its sentence's content words."""
    source_terms = {n: content_terms(body, sparse) for n, body in sources.items()}
    supported: set[int] = set()
    dropped = 0
    out: list[str] = []
    pos = 0
    for match in _SENTENCE_END.finditer(text + "\n"):
        sentence = text[pos : match.start()]
        separator = text[match.start() : match.end()]
        pos = match.end()
        terms = content_terms(sentence, sparse)

        def keep(m: re.Match[str], terms: set[int] = terms) -> str:
            nonlocal dropped
            kept = []
            for n in (int(x) for x in re.findall(r"\d+", m.group(1))):
                have = source_terms.get(n, set())
                if terms and len(terms & have) / len(terms) >= min_overlap:
                    kept.append(n)
                    supported.add(n)
                else:
                    dropped += 1
            return "".join(f"[{n}]" for n in kept) or "\x00"

        out.append(re.sub(r"[ \t]?\x00", "", _CITATION.sub(keep, sentence)) + separator)
    return Grounded("".join(out).rstrip(), supported, dropped)


class HoldSentinel:
    """Wraps a token callback so a reply that is only the sentinel is never streamed to the asker."""

    def __init__(self, on_token: Callable[[str], None]) -> None:
        self.on_token = on_token
        self.held = ""
        self.passing = False

    def __call__(self, token: str) -> None:
        if self.passing:
            self.on_token(token)
            return
        self.held += token
        probe = self.held.lstrip().lstrip("`*\"'")
        if not NO_ANSWER.startswith(probe[: len(NO_ANSWER)].upper()):
            self.passing = True
            self.on_token(self.held)
