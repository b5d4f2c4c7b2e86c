"""Soft term matching with the embedding model's token vectors: a missing rare term lowers the match, a paraphrase
keeps it; the words line up with the model's tokens. The cheap check: words' own vectors, windows, word pairs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from rag_core.answerability import (
    CHEAP_WEIGHTS,
    SOFT_FEATURES,
    STATIC_FEATURES,
    WEIGHTS,
    Evidence,
    answerability,
    cosines,
    features,
    sentence_similarities,
    term_weights,
)
from rag_core.grounding import content_terms
from rag_core.soft_match import (
    TokenVectors,
    Words,
    best_sentence,
    bigram_coverage,
    content_words,
    evidence_static_words,
    evidence_words,
    matches,
    merge,
    soft_features,
    static_words,
)
from rag_core.sparse import Bm25Encoder


@pytest.fixture(scope="module")
def sparse(small_engine) -> Bm25Encoder:  # type: ignore[no-untyped-def]
    return small_engine.sparse


def _words(small_engine, sparse: Bm25Encoder, *texts: str) -> list[Words]:  # type: ignore[no-untyped-def]
    tokens = small_engine.embedder.encode_tokens(list(texts))
    return [content_words(t, tv, sparse) for t, tv in zip(texts, tokens, strict=True)]


def _soft(
    small_engine, sparse: Bm25Encoder, question: str, sentence: str, pool: list[str]
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    q, s = _words(small_engine, sparse, question, sentence)
    weights = term_weights(content_terms(question, sparse), [content_terms(p, sparse) for p in pool])
    return soft_features(q, {"quoted": s}, weights)


def test_token_vectors_line_up_with_the_words(small_engine, sparse: Bm25Encoder) -> None:  # type: ignore[no-untyped-def]
    [(spans, vectors)] = small_engine.embedder.encode_tokens(["The per-diem for Japan is listed."])
    assert len(spans) == len(vectors) and spans[0] == (0, 0) and spans[-1] == (0, 0)
    [w] = _words(small_engine, sparse, "The per-diem for Japan is listed.")
    # stopwords ("the", "for", "is") are dropped; each content word has a unit vector
    assert len(w.terms) == 3 and np.allclose(np.linalg.norm(w.vectors, axis=1), 1.0, atol=1e-5)
    assert small_engine.embedder.encode_tokens([]) == []


def test_a_missing_rare_term_lowers_the_weakest_match(small_engine, sparse: Bm25Encoder) -> None:  # type: ignore[no-untyped-def]
    pool = ["Per diem rates for travel.", "Travel booking and per diem.", "The per diem for Canada is $80."]
    question = "What is the per diem for Japan?"
    held = _soft(small_engine, sparse, question, "The per diem for Japan is $80.", pool)
    other = _soft(small_engine, sparse, question, "The per diem for Canada is $80.", pool)
    assert held["soft_min_quoted"] == 1.0 and held["soft_quoted"] == 1.0
    assert other["soft_min_quoted"] < 0.8 and other["soft_quoted"] < held["soft_quoted"]


def test_a_paraphrase_keeps_a_soft_match_an_unrelated_sentence_does_not(
    small_engine, sparse: Bm25Encoder
) -> None:  # type: ignore[no-untyped-def]
    pool = [
        "New employees receive annual leave.",
        "Holidays are listed yearly.",
        "Expense reports are due monthly.",
    ]
    question = "How many vacation days do new hires get?"
    paraphrase = _soft(
        small_engine, sparse, question, "Newly joined staff receive 20 days of annual leave.", pool
    )
    unrelated = _soft(
        small_engine, sparse, question, "Expense reports are due on the fifth of the month.", pool
    )
    exact = len(
        content_terms(question, sparse)
        & content_terms("Newly joined staff receive 20 days of annual leave.", sparse)
    )
    # only "days" matches exactly; "vacation", "new", "hires" find "leave", "newly", "staff" softly
    assert exact == 1
    assert paraphrase["soft_quoted"] > unrelated["soft_quoted"] + 0.1
    assert paraphrase["soft_min_quoted"] > unrelated["soft_min_quoted"]


def test_matches_are_exact_first_then_the_best_cosine() -> None:
    q = Words([frozenset({1}), frozenset({2})], np.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    t = Words([frozenset({1}), frozenset({3})], np.asarray([[-1.0, 0.0], [0.6, 0.8]], dtype=np.float32))
    assert matches(q, t) == pytest.approx([1.0, 0.8])  # term 1 by stem even though its vector differs
    assert matches(q, merge([])) == [0.0, 0.0]
    both = soft_features(q, {"quoted": t}, {1: 1.0, 2: 3.0})
    assert both["soft_quoted"] == pytest.approx((1.0 + 3 * 0.8) / 4) and both[
        "soft_min_quoted"
    ] == pytest.approx(0.8)


def test_features_use_the_words_when_the_evidence_has_them(small_engine, sparse: Bm25Encoder) -> None:  # type: ignore[no-untyped-def]
    question, sentence = "What is the per diem for Japan?", "The per diem for Canada is $80."
    ev = Evidence(question=question, quoted=[sentence], blocks=[sentence])
    assert "soft_quoted" not in features(
        ev, sparse
    )  # no token vectors (e.g. recorded evidence): no soft features
    q, s = _words(small_engine, sparse, question, sentence)
    ev.words = {"question": [q], "quoted": [s], "blocks": [s]}
    f = features(ev, sparse)
    assert 0.0 < f["soft_quoted"] < 1.0 and f["soft_top"] == f["soft_quoted"]
    assert "words" not in ev.to_json()


def test_evidence_words_embeds_short_texts_apart_from_the_cut_sources(sparse: Bm25Encoder) -> None:
    seen: list[list[str]] = []

    def encode_tokens(texts: Sequence[str]) -> list[TokenVectors]:
        seen.append(list(texts))
        out: list[TokenVectors] = []
        for text in texts:
            spans = [(m.start(), m.end()) for m in re.finditer(r"\w+", text)]
            out.append(([(0, 0), *spans, (0, 0)], np.eye(len(spans) + 2, 8, dtype=np.float32)))
        return out

    words = evidence_words(
        "Japan per diem?",
        ["Per diem is $80.", "Travel policy."],
        ["Leave policy " * 50],
        encode_tokens,
        sparse,
        25,
    )
    # two forward passes: the short texts together, the (cut) source apart, so no short text is padded to it
    assert seen == [["Japan per diem?", "Per diem is $80.", "Travel policy."], ["Leave policy Leave policy"]]
    assert [len(words[k]) for k in ("question", "quoted", "blocks")] == [1, 2, 1]
    assert len(words["question"][0].terms) == 3 and len(words["blocks"][0].terms) == 4


def test_sentence_similarities_from_the_token_pass_equal_the_embedders(small_engine) -> None:  # type: ignore[no-untyped-def]
    question = "How fast must a page be acknowledged?"
    sentences = ["Acknowledge a page within five minutes.", "Expenses over $500 need approval."]
    tokens = small_engine.embedder.encode_tokens([question, *sentences])
    pooled = cosines(
        small_engine.embedder.pooled(tokens[0]), [small_engine.embedder.pooled(t) for t in tokens[1:]]
    )
    direct = sentence_similarities(
        question, sentences, small_engine.embedder.encode_query, small_engine.embedder.encode_passages
    )
    assert np.allclose(pooled, direct, atol=1e-5) and pooled[0] > pooled[1]


class CountingEmbedder:
    """The small engine's embedder, counting token passes."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.token_passes = inner, 0

    def encode_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        self.token_passes += 1
        return self.inner.encode_tokens(texts)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("soft_weighted", [True, False])
def test_token_vectors_are_embedded_only_when_a_soft_feature_weighs(
    small_engine, soft_weighted: bool
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import engine_with

    weights = dict(WEIGHTS) if soft_weighted else {k: v for k, v in WEIGHTS.items() if k not in SOFT_FEATURES}
    engine = engine_with(small_engine, answerability_weights=weights, answerability_min=0.01)
    engine.score_answerability = True  # the whole check (serving may decide it before the token passes)
    counting = CountingEmbedder(small_engine.embedder)
    engine.embedder = counting  # type: ignore[assignment]
    answer = engine.answer("How quickly must I acknowledge a page?")
    assert answer.extractive and answer.answerability is not None
    assert (counting.token_passes > 0) == soft_weighted


def test_counting_tokens_never_changes_the_models_own_tokenizer(small_engine) -> None:  # type: ignore[no-untyped-def]
    """A fast tokenizer's padding is state each call sets: counting on the model's own tokenizer while another thread
    embeds turned the batch's padding off ("Unable to create tensor" at 50 askers)."""
    backend = small_engine.embedder._model.tokenizer.backend_tokenizer
    backend.enable_padding()  # as the model's batch tokenization leaves it
    small_engine.embedder.count_tokens("How fast must a page be acknowledged?")
    small_engine.embedder.token_offsets("How fast must a page be acknowledged?")
    small_engine.embedder.encode_tokens(["Acknowledge a page within five minutes."])
    assert backend.padding is not None


def test_recent_texts_token_vectors_are_kept_within_the_budget(small_engine) -> None:  # type: ignore[no-untyped-def]
    embedder = small_engine.embedder
    calls: list[list[str]] = []
    model_encode = embedder._model.encode

    def counting(texts, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return model_encode(texts, **kwargs)

    embedder._model.encode = counting
    budget = embedder._tokens.budget
    try:
        first = embedder.encode_tokens(["A runbook passage quoted by many answers.", "A question?"])
        again = embedder.encode_tokens(["A runbook passage quoted by many answers.", "Another question?"])
        assert [sorted(c) for c in calls] == [
            ["A question?", "A runbook passage quoted by many answers."],
            ["Another question?"],
        ]
        assert np.array_equal(first[0][1], again[0][1]) and first[0][0] == again[0][0]
        embedder._tokens.budget = 0  # nothing is kept past the budget
        embedder.encode_tokens(["Something new."])
        assert embedder._tokens.used == 0 and not len(embedder._tokens)
    finally:
        embedder._model.encode = model_encode
        embedder._tokens.budget = budget


# --- the cheap check: each word's own vector, embedded once -------------------------------------------------


def test_word_vectors_need_no_forward_pass_and_are_kept(small_engine) -> None:  # type: ignore[no-untyped-def]
    embedder = small_engine.embedder
    model_encode = embedder._model.encode

    def no_pass(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("word vectors must not run the model")

    embedder._model.encode = no_pass
    embedder._words.clear()
    try:
        first = embedder.word_vectors(["Vacation", "leave", "invoice", "reimbursement"])
        assert embedder._words.keys() == ["vacation", "leave", "invoice", "reimbursement"]
        again = embedder.word_vectors(["vacation", "LEAVE"])
        assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
        # one word, however cased, one vector; a word of several word pieces is their mean, still unit length
        assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
        assert len(embedder.tokenizer("reimbursement", add_special_tokens=False)["input_ids"]) > 1
        assert first[3] @ first[3] == pytest.approx(1.0, abs=1e-5)
        assert embedder.word_vectors([]).shape == (0, first.shape[1])
        budget = embedder._words.budget
        embedder._words.budget = 0  # nothing is kept past the budget
        embedder.word_vectors(["parental"])
        assert not embedder._words
    finally:
        embedder._model.encode = model_encode
        embedder._words.budget = budget


_AXES: dict[str, int] = {"vacation": 0, "leave": 0}


def _fake_vectors(words: Sequence[str]) -> np.ndarray:
    """One axis per distinct word (so other words do not match), "vacation" at cosine 0.8 with "leave"."""
    out = np.zeros((len(words), 512), dtype=np.float32)
    for i, w in enumerate(words):
        key = w.lower()
        out[i, _AXES.setdefault(key, len(_AXES))] = 1.0
        if key == "vacation":
            out[i, 511] = 0.75
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_static_words_keep_the_content_words_and_their_sentences(sparse: Bm25Encoder) -> None:
    w = static_words("The per diem for Japan is listed. Canada is not!\nSee travel.", _fake_vectors, sparse)
    assert len(w.terms) == len(w.sentences) == w.vectors.shape[0]
    assert w.sentences == sorted(w.sentences) and set(w.sentences) == {0, 1, 2}
    assert static_words("the of and", _fake_vectors, sparse).terms == []  # stopwords only


def test_the_best_window_is_one_place_not_a_scattered_page(sparse: Bm25Encoder) -> None:
    question = static_words("Vacation for contractors in Japan?", _fake_vectors, sparse)
    weights = dict.fromkeys({t for ids in question.terms for t in ids}, 1.0)
    scattered = static_words(
        "Contractors are paid monthly. Some offices are in Japan. Expenses are filed online. "
        "Every employee gets twenty days of leave.",
        _fake_vectors,
        sparse,
    )
    together = static_words(
        "Expenses are filed online. Contractors in Japan get twenty days of leave.", _fake_vectors, sparse
    )
    far, near = best_sentence(question, scattered, weights), best_sentence(question, together, weights)
    assert near["window"] > far["window"] and near["min_window"] > far["min_window"]
    # the soft part: "leave" stands for "vacation" at its cosine
    assert near["min_window"] == pytest.approx(0.8, abs=1e-5)
    assert best_sentence(question, merge([]), weights) == {"window": 0.0, "min_window": 0.0}


def test_bigram_coverage_needs_the_words_together(sparse: Bm25Encoder) -> None:
    question = static_words("parental leave policy for contractors", _fake_vectors, sparse)
    apart = static_words(
        "Parental benefits are described elsewhere. "
        + "Filler words here. " * 3
        + "Leave is accrued monthly.",
        _fake_vectors,
        sparse,
    )
    together = static_words("The parental leave policy covers contractors.", _fake_vectors, sparse)
    assert bigram_coverage(question, together) == 1.0
    assert bigram_coverage(question, apart) == 0.0
    assert bigram_coverage(static_words("leave", _fake_vectors, sparse), apart) == 1.0  # no pair to miss


def test_cheap_features_need_only_word_vectors(sparse: Bm25Encoder) -> None:
    question = "How many vacation days do new hires get?"
    held, other = "New hires get 20 days of leave.", "Invoices are due monthly."
    scores = []
    for sentence in (held, other):
        ev = Evidence(question=question, quoted=[sentence], blocks=[sentence], relevances=[0.5])
        ev.static = evidence_static_words(question, [sentence], [sentence], _fake_vectors, sparse)
        f = features(ev, sparse)
        assert set(STATIC_FEATURES) <= set(f) and "soft_quoted" not in f
        scores.append(answerability(ev, sparse, CHEAP_WEIGHTS))
    assert scores[0] > scores[1]
    assert "static" not in Evidence(question=question, quoted=[], blocks=[]).to_json()


@pytest.mark.parametrize("weights_name", ["cheap", "shipped"])
def test_the_cheap_check_embeds_words_not_texts(small_engine, weights_name: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import engine_with

    weights = dict(CHEAP_WEIGHTS) if weights_name == "cheap" else dict(WEIGHTS)
    engine = engine_with(small_engine, answerability_weights=weights, answerability_min=0.01)
    engine.score_answerability = True  # the whole check (serving may decide it before the token passes)
    counting = CountingEmbedder(small_engine.embedder)
    words: list[list[str]] = []
    passages: list[list[str]] = []
    counting.word_vectors = lambda ws: words.append(list(ws)) or small_engine.embedder.word_vectors(ws)  # type: ignore[attr-defined]
    counting.encode_passages = lambda ts: (
        passages.append(list(ts)) or small_engine.embedder.encode_passages(ts)
    )  # type: ignore[attr-defined]
    engine.embedder = counting  # type: ignore[assignment]
    answer = engine.answer("How quickly must I acknowledge a page?")
    assert answer.extractive and answer.answerability is not None
    if weights_name == "cheap":  # no contextual pass and no sentence embedding: only words' own vectors
        assert counting.token_passes == 0 and not passages and words
        assert any("acknowledge" in w.lower() for batch in words for w in batch)
    else:
        assert counting.token_passes > 0 and not words
