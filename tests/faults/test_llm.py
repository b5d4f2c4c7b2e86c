"""The LLM is down or hangs: a cited quoted-passage answer within the timeout, and the LLM is used again after."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import figure
from tests.rag_core.test_engine import engine_like


@pytest.mark.parametrize(
    ("fault", "behaviour"), [("LLM down (HTTP 503)", {"status": 503}), ("LLM hangs", {"delay_s": 2.5})]
)
def test_llm_down_or_hanging_gives_a_cited_quoted_answer(
    small_engine, tmp_path: Path, openai_server, fault: str, behaviour: dict[str, object]
) -> None:
    engine = engine_like(
        small_engine, tmp_path, generator_url=openai_server.base_url, llm_timeout_s=1.0, llm_max_retries=0
    )
    openai_server.reset(reply="Revoke the old key [1].", **behaviour)
    started = time.monotonic()
    answer = engine.answer("How do I reset my VPN?")
    took = time.monotonic() - started
    assert answer.extractive and answer.error and answer.citations[0].title == "VPN how-to"
    assert "revoke the old key" in answer.text and "[1]" in answer.text
    generate_s = answer.timings_ms["generate"] / 1000
    assert generate_s < 1.0 + 0.5  # the LLM's timeout bounds the wait; retrieval before it is not counted

    openai_server.reset(reply="Revoke the old key [1].")
    back = time.monotonic()
    assert engine.answer("How do I reset my VPN?").text == "Revoke the old key [1]."  # not cached: LLM again
    figure(fault, "generation stage until the quoted fallback (timeout 1 s)", generate_s)
    figure(fault, "whole answer incl. retrieval and rerank", took)
    figure(fault, "LLM back to first generated answer", time.monotonic() - back)
    engine.close()
