"""Context packing: budgets never exceeded, adjacent chunks merged, headers carry number, title, path and URL."""

from __future__ import annotations

import random

from rag_core.packing import header, pack_context, token_budget
from rag_core.tokens import count_tokens
from rag_core.types import Candidate, Chunk
from tests.conftest import make_settings


def cand(doc: str, pos: int, text: str, score: float, overlap: int = 0) -> Candidate:
    chunk = Chunk(
        doc, "wiki", f"Title {doc}", text, f"https://wiki/{doc}", [f"Title {doc}", "Section"], pos, overlap
    )
    return Candidate(chunk, relevance=score)


def test_budget_is_never_exceeded():
    rng = random.Random(7)
    words = [
        "deploy",
        "paging",
        "vpn",
        "expenses",
        "dinner",
        "contractor",
        "escalation",
        "portal",
        "key",
        "config",
    ]
    for trial in range(200):
        cands = [
            cand(
                f"d{rng.randint(0, 5)}",
                rng.randint(0, 8),
                " ".join(rng.choices(words, k=rng.randint(5, 300))),
                rng.random(),
            )
            for _ in range(rng.randint(1, 12))
        ]
        budget = rng.randint(40, 2000)
        packed = pack_context(cands, budget, "o200k_base")
        total = sum(count_tokens(b.text) + 1 for b in packed.blocks)
        assert total <= budget, (trial, total, budget)
        assert packed.tokens == total
        assert packed.blocks, "the best source is cut to fit rather than dropped"


def test_best_first_adjacent_chunks_merged_and_numbered():
    cands = [
        cand("b", 3, "B three.", 0.9),
        cand("a", 0, "A zero.", 0.8),
        cand("b", 4, "…three.\n\nB four.", 0.7, overlap=len("…three.\n\n")),
        cand("b", 9, "B nine.", 0.6),
    ]
    packed = pack_context(cands, 1000, "o200k_base")
    assert [b.n for b in packed.blocks] == [1, 2, 3]
    assert packed.blocks[0].text == "[1] Title b — Section — https://wiki/b\nB three.\n\nB four."
    assert packed.blocks[1].citation.title == "Title a"
    assert packed.blocks[2].citation.snippet == "B nine."


def test_header_format():
    chunk = Chunk("x", "s", "VPN how-to", "t", "https://drive/vpn", ["IT", "VPN how-to", "Resetting"], 0)
    assert header(4, chunk) == "[4] VPN how-to — IT > Resetting — https://drive/vpn"


def test_dollar_budget_caps_tokens(tmp_path):
    settings = make_settings(
        tmp_path,
        max_context_tokens=10_000,
        max_cost_per_question_usd=0.001,
        llm_model="gpt-4o",
        llm_max_output_tokens=50,
    )
    # (0.001 - 50 * 10e-6) / 2.5e-6 = 200 tokens, minus 100 overhead
    assert token_budget(settings, overhead_tokens=100) == 100
    assert token_budget(settings.model_copy(update={"llm_model": "llama3-local"}), 100) == 10_000
