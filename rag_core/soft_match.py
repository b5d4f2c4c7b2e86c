"""Soft term matching with the embedding model's own contextual token vectors (BERTScore-style recall).

A question's word counts as found in a sentence when the same stem is there (1.0), else by the best cosine between
its vector and a content word's vector in the sentence: "paid time off" finds "annual leave" partly, "Japan" does
not find "Germany" well. Vectors come from the embedding model itself (`Embedder.encode_tokens`) over the question,
the quoted sentences and the top source; nothing here knows any corpus or language beyond the BM25 analyser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rag_core.recent import Recent
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
    # the sentence each word is in (static_words only; empty = one sentence)
    sentences: list[int] = field(default_factory=list)


# One row of unit vectors per word, each word embedded alone (Embedder.word_vectors).
WordVectors = Callable[[Sequence[str]], np.ndarray]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@lru_cache(maxsize=100_000)
def _word_terms(sparse: Bm25Encoder, word: str) -> frozenset[int]:
    return frozenset(sparse.encode_query(word).indices)


def static_words(text: str, word_vectors: WordVectors, sparse: Bm25Encoder) -> Words:
    """The content words of `text` with each word's own vector (no context: a word is embedded once and kept,
    so this costs no forward pass per text), and the sentence each word is in."""
    found: list[tuple[str, frozenset[int], int]] = []
    for i, sentence in enumerate(_SENTENCE_END.split(text)):
        for match in _WORD.finditer(sentence):
            ids = _word_terms(sparse, match.group(0).lower())
            if ids:
                found.append((match.group(0), ids, i))
    vectors = word_vectors([w for w, _, _ in found]) if found else np.zeros((0, 0), dtype=np.float32)
    return Words(
        [ids for _, ids, _ in found], np.asarray(vectors, dtype=np.float32), [i for _, _, i in found]
    )


def best_sentence(question: Words, target: Words, weights: Mapping[int, float]) -> dict[str, float]:
    """The single sentence (or two consecutive ones) of `target` that holds most of the question's rarity-weighted
    words, matched softly: its recall and its weakest rare word. What is asked must be said in one place, not
    scattered over a page that shares the topic's words."""
    if not question.terms:
        return {"window": 1.0, "min_window": 1.0}
    if not target.terms:
        return {"window": 0.0, "min_window": 0.0}
    w = np.asarray([max(weights.get(t, 0.0) for t in ids) for ids in question.terms])
    w = w if w.sum() > 0 else np.ones_like(w)
    rare = w >= np.median(w)
    sims = np.clip(question.vectors @ target.vectors.T, 0.0, 1.0)
    for j, ids in enumerate(target.terms):  # the same stem counts fully
        for i, q in enumerate(question.terms):
            if q <= ids:
                sims[i, j] = 1.0
    sent = np.asarray(target.sentences or [0] * len(target.terms))
    best = (-1.0, 0.0)
    for s in np.unique(sent):
        inside = (sent == s) | (sent == s + 1)
        m = sims[:, inside].max(axis=1)
        recall = float((w * m).sum() / w.sum())
        if recall > best[0]:
            best = (recall, float(m[rare].min()))
    return {"window": best[0], "min_window": best[1]}


def bigram_coverage(question: Words, target: Words, span: int = 3) -> float:
    """Share of the question's consecutive content-word pairs found within `span` words of each other in the
    target (exact stems): "leave policy for contractors" is more than "leave", "policy" and "contractors" apart."""
    pairs = list(zip(question.terms, question.terms[1:], strict=False))
    if not pairs:
        return 1.0
    positions: dict[int, list[int]] = {}
    for j, ids in enumerate(target.terms):
        for t in ids:
            positions.setdefault(t, []).append(j)
    found = 0
    for a, b in pairs:
        pa = [p for t in a for p in positions.get(t, [])]
        pb = np.asarray([p for t in b for p in positions.get(t, [])])
        if pa and len(pb) and any(np.abs(pb - p).min() <= span for p in pa):
            found += 1
    return found / len(pairs)


def content_words(text: str, tokens: TokenVectors, sparse: Bm25Encoder) -> Words:
    """Each content word of `text` with the mean of its tokens' vectors (zero past the model's token limit)."""
    offsets, vectors = tokens
    vectors = np.asarray(vectors, dtype=np.float32)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    found = [
        (m.start(), m.end(), ids) for m in _WORD.finditer(text) if (ids := _word_terms(sparse, m.group(0)))
    ]
    if not found:
        return Words([], np.zeros((0, dim), dtype=np.float32))
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    real = np.flatnonzero(spans[:, 1] > spans[:, 0])  # special tokens have empty spans
    starts, ends = spans[real, 0], spans[real, 1]  # in text order: a word's tokens are a run of them
    first = np.searchsorted(
        ends, np.asarray([s for s, _, _ in found]), side="right"
    )  # first token ending inside
    last = np.searchsorted(
        starts, np.asarray([e for _, e, _ in found]), side="left"
    )  # past the last starting inside
    sums = np.zeros((len(real) + 1, dim), dtype=np.float64)
    np.cumsum(vectors[real], axis=0, out=sums[1:])
    counts = np.maximum(last - first, 0)
    rows = (sums[np.maximum(last, first)] - sums[first]) / np.maximum(counts, 1)[:, None]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return Words([ids for _, _, ids in found], rows.astype(np.float32))


# `content_words`, or a caller's memory of it (KeptWords)
WordsOf = Callable[[str, TokenVectors, Bm25Encoder], Words]


class KeptWords:
    """`content_words` of recent texts, given again while a text comes with the very same token vectors (the
    embedder keeps recent texts' vectors, and spans with zeros for a source it did not embed, so a source quoted
    by answer after answer is read once)."""

    def __init__(self, budget_bytes: int) -> None:
        self._recent: Recent[tuple[np.ndarray, Words]] = Recent(budget_bytes, lambda e: e[1].vectors.nbytes)

    def __call__(self, text: str, tokens: TokenVectors, sparse: Bm25Encoder) -> Words:
        kept = self._recent.found([text]).get(text)
        if kept is not None and kept[0] is tokens[1]:
            return kept[1]
        words = content_words(text, tokens, sparse)
        if (
            kept is not None
        ):  # other vectors now (embedded again, or embedded at last): these words replace those
            self._recent.forget(text)
        self._recent.keep({text: (tokens[1], words)})
        return words


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
    dims = [w.vectors.shape[1] for w in words if w.vectors.ndim == 2 and len(w.terms)]
    vectors = (
        np.vstack([w.vectors for w in words if len(w.terms)])
        if terms
        else np.zeros((0, dims[0] if dims else 0))
    )
    sentences, offset = [], 0
    for w in words:  # each text's sentences stay apart
        own = w.sentences or [0] * len(w.terms)
        sentences += [offset + s for s in own]
        offset += (max(own) + 2) if own else 0
    return Words(terms, vectors.astype(np.float32), sentences)


def evidence_words(
    question: str,
    quoted: Sequence[str],
    blocks: Sequence[str],
    encode_tokens: Callable[[Sequence[str]], Sequence[TokenVectors]],
    sparse: Bm25Encoder,
    block_chars: int = BLOCK_CHARS,
    short_tokens: Sequence[TokenVectors] | None = None,
    words_of: WordsOf = content_words,
) -> dict[str, list[Words]]:
    """The content words of the question, the quoted sentences and the sources (their first `block_chars`
    characters). Two forward passes: the short texts together, the long sources apart, since one batch pads every
    text to its longest (the sentences padded to a whole source cost five times more). `short_tokens`: the
    question's and quoted sentences' token vectors when the caller has them already."""
    short = [question, *quoted]
    vectors = short_tokens or encode_tokens(short)
    words = [words_of(t, tv, sparse) for t, tv in zip(short, vectors, strict=True)]
    return {
        "question": words[:1],
        "quoted": words[1:],
        "blocks": source_words(blocks, encode_tokens, sparse, block_chars, words_of),
    }


def source_words(
    blocks: Sequence[str],
    encode_tokens: Callable[[Sequence[str]], Sequence[TokenVectors]],
    sparse: Bm25Encoder,
    block_chars: int = BLOCK_CHARS,
    words_of: WordsOf = content_words,
) -> list[Words]:
    """The content words of the sources (their first `block_chars` characters), in one forward pass."""
    long = [b[:block_chars] for b in blocks]
    vectors = encode_tokens(long) if long else []
    return [words_of(t, tv, sparse) for t, tv in zip(long, vectors, strict=True)]


def evidence_static_words(
    question: str,
    quoted: Sequence[str],
    blocks: Sequence[str],
    word_vectors: WordVectors,
    sparse: Bm25Encoder,
) -> dict[str, list[Words]]:
    """The content words of the question, the quoted sentences and the sources with each word's own vector
    (`static_words`): no forward pass beyond the words never seen before."""
    return {
        "question": [static_words(question, word_vectors, sparse)],
        "quoted": [static_words(q, word_vectors, sparse) for q in quoted],
        "blocks": [static_words(b, word_vectors, sparse) for b in blocks],
    }
