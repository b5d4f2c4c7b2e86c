"""Rerank stage: a real CrossEncoder built at test time and loaded by path from settings, and the fallback."""

from __future__ import annotations

import logging

import pytest

from rag_core.rerank import CrossEncoderReranker, FusionReranker, load_reranker
from rag_core.retrieval import rrf_fuse
from rag_core.store import Hit
from rag_core.types import Candidate, Chunk
from tests.conftest import make_settings

WORDS = [
    "vpn",
    "reset",
    "key",
    "portal",
    "dinner",
    "expenses",
    "limit",
    "paging",
    "on",
    "call",
    "the",
    "how",
    "do",
    "i",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A 2-layer BERT cross-encoder with a 20-word vocabulary, saved the way real ones are distributed."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-ce")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CrossEncoder(str(folder))  # loads offline, as a downloaded ms-marco model would
    return folder


def cand(text: str, dense: float, sparse: float | None) -> Candidate:
    return Candidate(
        Chunk("d" + text[:3], "s", "T", text, "u", [], 0), dense_score=dense, sparse_score=sparse
    )


def test_cross_encoder_from_settings_path_scores_every_pair(tiny_cross_encoder):
    reranker = load_reranker(make_settings(tiny_cross_encoder.parent, rerank_model=str(tiny_cross_encoder)))
    assert isinstance(reranker, CrossEncoderReranker)
    cands = [
        cand("reset the vpn key", 0.2, 1.0),
        cand("dinner expenses limit", 0.9, None),
        cand("on call paging", 0.5, 2.0),
    ]
    ranked = reranker.rerank("how do i reset the vpn key", cands)
    expected = reranker.model.predict(
        [("how do i reset the vpn key", c.chunk.embed_text) for c in cands], activation_fn=lambda x: x
    )
    by_text = {c.chunk.text: c for c in ranked}
    for c, logit in zip(cands, expected, strict=True):
        assert by_text[c.chunk.text].rerank_score == pytest.approx(float(logit), abs=1e-5)
        assert 0.0 < by_text[c.chunk.text].relevance < 1.0
    assert [c.rerank_score for c in ranked] == sorted((c.rerank_score for c in ranked), reverse=True)


def test_unloadable_model_falls_back_to_score_fusion_with_a_clear_log(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        reranker = load_reranker(make_settings(tmp_path, rerank_model="cross-encoder/ms-marco-MiniLM-L6-v2"))
    assert isinstance(reranker, FusionReranker)
    record = next(r for r in caplog.records if r.__dict__.get("event") == "reranker_fallback")
    assert record.model == "cross-encoder/ms-marco-MiniLM-L6-v2" and record.reason


def test_empty_model_setting_means_score_fusion(tmp_path):
    assert isinstance(load_reranker(make_settings(tmp_path, rerank_model="")), FusionReranker)


def test_score_fusion_mixes_dense_and_bm25_and_keeps_cosine_as_relevance():
    fusion = FusionReranker(dense_weight=0.5, min_relevance=0.3)
    ranked = fusion.rerank("q", [cand("aaa", 0.60, None), cand("bbb", 0.50, 4.0), cand("ccc", 0.55, 2.0)])
    assert [c.chunk.text for c in ranked] == ["bbb", "ccc", "aaa"]  # 0.75, 0.525, 0.30
    assert [c.relevance for c in ranked] == [0.50, 0.55, 0.60]


def test_rrf_order():
    dense = [Hit("a", 0.9, {}), Hit("b", 0.8, {}), Hit("c", 0.7, {})]
    sparse = [Hit("c", 9.0, {}), Hit("d", 5.0, {}), Hit("a", 1.0, {})]
    fused = rrf_fuse([dense, sparse], k=60)
    assert [pid for pid, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)  # a and c tie; a came first
