"""Soft term matching with the embedding model's own contextual token vectors (BERTScore-style recall).

A question's word counts as found in a sentence when the same stem is there (1.0), else by the best cosine between
its vector and a content word's vector in the sentence: "paid time off" finds "annual leave" partly, "Japan" does
not find "Germany" well. Vectors come from the embedding model itself (`Embedder.encode_tokens`) over the question,
the quoted sentences and the top source; nothing here knows any corpus or language beyond the BM25 analyser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag_core.sparse import Bm25Encoder

_WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*")

# How much of a source the soft match reads; by default all of it that fits the model's window (256 tokens): the
# first 500 characters only did worse left out (docs/answers.md).
BLOCK_CHARS = 100_000

# (character span of each model token, one row of vectors per token) for one text, special tokens included.
TokenVectors = tuple[Sequence[tuple[int, int]], np.ndarray]


@dataclass(slots=True)
class Words:
    """The content words of a text (stopwords dropped by the BM25 analyser): their terms and unit vectors."""

    terms: list[frozenset[int]]
    vectors: np.ndarray  # (words, dim), unit length; zero rows for words past the model's token limit


def content_words(text: str, tokens: TokenVectors, sparse: Bm25Encoder) -> Words:
    """Each content word of `text` with the mean of its tokens' vectors."""
    offsets, vectors = tokens
    vectors = np.asarray(vectors, dtype=np.float32)
    starts = np.asarray([s for s, _ in offsets], dtype=np.int64)
    ends = np.asarray([e for _, e in offsets], dtype=np.int64)
    real = ends > starts  # special tokens have empty spans
    terms: list[frozenset[int]] = []
    rows: list[np.ndarray] = []
    for match in _WORD.finditer(text):
        ids = frozenset(sparse.encode_query(match.group(0)).indices)
        if not ids:
            continue
        inside = real & (starts < match.end()) & (ends > match.start())
        v = vectors[inside].mean(axis=0) if inside.any() else np.zeros(vectors.shape[1], dtype=np.float32)
        norm = float(np.linalg.norm(v))
        terms.append(ids)
        rows.append(v / norm if norm else v)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return Words(terms, np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32))


def matches(question: Words, target: Words) -> list[float]:
    """For each question word: 1.0 when its stem is in the target, else its best cosine with a target word."""
    have = frozenset().union(*target.terms) if target.terms else frozenset()
    sims = question.vectors @ target.vectors.T if len(target.terms) else np.zeros((len(question.terms), 0))
    out = []
    for i, ids in enumerate(question.terms):
        if ids <= have:
            out.append(1.0)
        else:
            out.append(float(max(0.0, sims[i].max())) if sims.shape[1] else 0.0)
    return out


def soft_features(
    question: Words, targets: Mapping[str, Words], weights: Mapping[int, float]
) -> dict[str, float]:
    """Rarity-weighted soft recall of the question's words in each target, and the weakest rare word's match.

    `weights` is the rarity of each term among the question's candidates (answerability.term_weights); the
    weakest link is taken over the words at least as rare as the median word, the ones that say what is asked."""
    if not question.terms:
        return {f"soft_{name}": 1.0 for name in targets} | {f"soft_min_{name}": 1.0 for name in targets}
    w = np.asarray([max(weights.get(t, 0.0) for t in ids) for ids in question.terms])
    rare = w >= np.median(w)
    out: dict[str, float] = {}
    for name, target in targets.items():
        m = np.asarray(matches(question, target))
        out[f"soft_{name}"] = float((w * m).sum() / w.sum()) if w.sum() > 0 else float(m.mean())
        out[f"soft_min_{name}"] = float(m[rare].min())
    return out


def merge(words: Sequence[Words]) -> Words:
    """Several texts' words as one target (the quoted sentences together)."""
    terms = [t for w in words for t in w.terms]
    dims = [w.vectors.shape[1] for w in words if w.vectors.ndim == 2]
    vectors = np.vstack([w.vectors for w in words]) if terms else np.zeros((0, dims[0] if dims else 0))
    return Words(terms, vectors.astype(np.float32))


def evidence_words(
    question: str,
    quoted: Sequence[str],
    blocks: Sequence[str],
    encode_tokens: Callable[[Sequence[str]], Sequence[TokenVectors]],
    sparse: Bm25Encoder,
    block_chars: int = BLOCK_CHARS,
    short_tokens: Sequence[TokenVectors] | None = None,
) -> dict[str, list[Words]]:
    """The content words of the question, the quoted sentences and the sources (their first `block_chars`
    characters). Two forward passes: the short texts together, the long sources apart, since one batch pads every
    text to its longest (the sentences padded to a whole source cost five times more). `short_tokens`: the
    question's and quoted sentences' token vectors when the caller has them already."""
    short = [question, *quoted]
    long = [b[:block_chars] for b in blocks]
    vectors = [*(short_tokens or encode_tokens(short)), *(encode_tokens(long) if long else [])]
    words = iter([content_words(t, tv, sparse) for t, tv in zip([*short, *long], vectors, strict=True)])
    return {
        "question": [next(words)],
        "quoted": [next(words) for _ in quoted],
        "blocks": [next(words) for _ in long],
    }
