"""The answerability check's token vectors under load: a question's come out of the pass that embeds it for
retrieval, concurrent answers' passes share one forward, and a batch is cut by length so a short text is never
padded to a whole source; every text gets the vectors it gets alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from rag_core.engine import Engine
from rag_core.soft_match import KeptWords
from tests.conftest import engine_with


def _forwards(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of each forward pass `model` makes from now on."""
    seen: list[list[str]] = []
    real = model.encode

    def counting(texts: Any, **kwargs: Any) -> Any:
        seen.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(model, "encode", counting)
    return seen


def _until(check: Any, timeout_s: float = 30) -> bool:
    """Polls a state the batcher offers no wake-up for."""
    pause = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return True
        pause.wait(0.01)
    return check()


def _solo(small_engine: Engine, text: str) -> np.ndarray:
    """`text`'s token vectors from a pass over it alone."""
    vectors = small_engine.embedder._token_model.encode([text], output_value="token_embeddings")
    return np.asarray(vectors[0].float().numpy(), dtype=np.float32)


def test_a_quoted_answers_check_embeds_its_question_once(
    small_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrieval embeds the question; the check reads its token vectors from that same pass."""
    engine = engine_with(small_engine, answerability_min=0.01)
    engine.score_answerability = True  # the whole check: every pass it can make
    forwards = _forwards(small_engine.embedder.backend.model, monkeypatch)
    question = "How quickly must I acknowledge a page on a quiet Sunday?"
    answer = engine.answer(question)
    assert answer.answerability is not None  # quoted and checked
    assert sum(question in texts for texts in forwards) == 1


def test_the_question_vectors_from_the_retrieval_pass_are_the_ones_it_gets_alone(
    small_engine: Engine,
) -> None:
    embedder = small_engine.embedder
    questions = ["Who approves a team dinner for nine?", "vpn reset", "When is the next deploy freeze?"]
    embedder._encode_queries(questions)  # one batch: each padded to the longest
    for question in questions:
        spans, vectors = embedder._tokens.found([question])[question]
        assert np.allclose(vectors, _solo(small_engine, question), atol=1e-4)
        assert spans == [(0, 0), *embedder.token_offsets(question), (0, 0)]


def test_a_batch_pads_short_texts_together_and_long_ones_apart(
    small_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = small_engine.embedder
    short = ["Who is on call?", "Page the secondary.", "Dinners are covered."]
    long = " ".join(["The on-call engineer acknowledges a page within five minutes."] * 12)
    forwards = _forwards(embedder._token_model, monkeypatch)
    vectors = embedder._encode_token_batch([short[0], long, *short[1:]])
    assert sorted(map(sorted, forwards)) == [sorted(short), [long]]
    for text, v in zip([short[0], long, *short[1:]], vectors, strict=True):
        assert np.allclose(v, _solo(small_engine, text), atol=1e-4)


def test_concurrent_answers_token_passes_share_a_forward(
    small_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the model is busy, the token passes of other answers gather into one batch."""
    embedder = small_engine.embedder
    batcher = embedder.token_batches
    forwards = _forwards(embedder._token_model, monkeypatch)
    texts = [f"Quoted sentence number {i} about paging the on-call engineer." for i in range(5)]
    with ThreadPoolExecutor(len(texts)) as pool:
        with embedder._lock:  # the model is busy: the first pass waits for it
            first = pool.submit(embedder.encode_tokens, [texts[0]])
            assert _until(lambda: batcher._encoding.locked() and batcher.gathering == 0)
            rest = [pool.submit(embedder.encode_tokens, [t]) for t in texts[1:]]
            assert _until(lambda: batcher.gathering == len(texts) - 1)
        results = [first.result(30)[0], *(f.result(30)[0] for f in rest)]
    assert forwards == [[texts[0]], sorted(texts[1:], key=len)]
    for text, (spans, vectors) in zip(texts, results, strict=True):
        assert np.allclose(vectors, _solo(small_engine, text), atol=1e-4)
        assert len(spans) == len(vectors)


def test_sentence_vectors_from_token_vectors_are_the_models_own(
    small_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's sentence similarities pool token vectors: in numpy for a mean-pooling model (this one), else
    through the model's own modules; both give the vector the model embeds the text to."""
    embedder = small_engine.embedder
    texts = ["Who is on call?", "The on-call engineer acknowledges a page within five minutes. " * 10, "x"]
    embedded = embedder.backend.encode(texts, len(texts))
    tokens = embedder.encode_tokens(texts)
    assert embedder._mean_pooled()
    assert np.allclose(embedder.pooled_many(tokens), embedded, atol=1e-5)
    monkeypatch.setattr(embedder, "_mean_pooled", lambda: False)
    assert np.allclose(embedder.pooled_many(tokens), embedded, atol=1e-5)
    assert np.allclose(embedder.pooled(tokens[1]), embedded[1], atol=1e-5)


def test_kept_words_are_given_again_only_with_the_same_vectors(small_engine: Engine) -> None:
    kept, sparse = KeptWords(1 << 20), small_engine.sparse
    text = "The on-call engineer acknowledges every page."
    tokens = small_engine.embedder.encode_tokens([text])[0]
    first = kept(text, tokens, sparse)
    assert kept(text, tokens, sparse) is first
    zeros = (tokens[0], np.zeros_like(tokens[1]))  # the same text, other vectors (stem-only spans)
    stem_only = kept(text, zeros, sparse)
    assert stem_only is not first and not stem_only.vectors.any() and stem_only.terms == first.terms
    again = kept(
        text, tokens, sparse
    )  # its vectors again: the words are made from them, not taken from zeros
    assert again is not stem_only and np.allclose(again.vectors, first.vectors)


def test_rag_token_cache_mb_bounds_the_checks_caches_together(small_engine: Engine) -> None:
    """The setting is one budget for the check's three caches (token vectors, words' vectors, content words),
    not one each: their budgets add up to it, and after answers that fill them they hold no more."""
    from rag_core.embedding import Embedder
    from rag_core.kv import MemoryKV

    mib = 1024 * 1024
    settings = small_engine.settings.model_copy(update={"token_cache_mb": 1, "answerability_min": 0.01})
    embedder = Embedder(settings)
    engine = Engine(
        settings, store=small_engine.store, embedder=embedder, reranker=small_engine.reranker, kv=MemoryKV()
    )
    engine.score_answerability = True  # the whole check: every cache it has
    caches = [embedder._tokens, embedder._words, engine._words._recent]
    assert sum(cache.budget for cache in caches) == mib
    for question in [
        "How quickly must I acknowledge a page on a quiet Sunday?",
        "Who approves a team dinner for nine?",
        "When is the next deploy freeze?",
        "How do I reset my VPN token?",
    ]:
        engine.answer(question)
    used = sum(cache.used for cache in caches)
    assert 0 < used <= mib and all(cache.used <= cache.budget for cache in caches)
