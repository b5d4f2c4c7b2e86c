"""Discord rendering: message splitting at the 2,000-character limit and the sources embed's limits."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bot.discord.render import (
    EMBED_DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    MESSAGE_LIMIT,
    answer_embed,
    source_line,
    sources_embed,
    split_message,
)
from rag_core.types import Answer, Citation


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"\s+", text.replace("```py", " ").replace("```", " ")) if w]


def _fences_balanced(piece: str) -> bool:
    return sum(1 for line in piece.splitlines() if line.strip().startswith("```")) % 2 == 0


def test_short_text_is_one_message() -> None:
    assert split_message("  Hello **world**.  ") == ["Hello **world**."]
    assert split_message("   ") == []


def test_long_text_splits_on_paragraphs_and_loses_nothing() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 60 for i in range(30)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    pieces = split_message(text)
    assert len(pieces) > 1
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    # Every piece ends where a paragraph ended.
    assert all(p.endswith("word") for p in pieces)
    assert _words(" ".join(pieces)) == _words(text)


def test_one_huge_paragraph_splits_at_sentences() -> None:
    text = " ".join(f"Sentence number {i} says something useful." for i in range(200))
    pieces = split_message(text)
    assert len(pieces) > 1
    assert all(len(p) <= MESSAGE_LIMIT and p.endswith("useful.") for p in pieces)
    assert _words(" ".join(pieces)) == _words(text)


def test_text_without_breaks_is_hard_cut_within_the_limit() -> None:
    text = "x" * 4500
    pieces = split_message(text)
    assert [len(p) for p in pieces] == [1996, 1996, 508]
    assert "".join(pieces) == text


def test_code_block_stays_whole_when_it_fits() -> None:
    intro = "Intro line. " * 120  # ~1,440 characters
    code = "```py\n" + "\n".join(f"x_{i} = {i}" for i in range(60)) + "\n```"
    text = intro.strip() + "\n\n" + code + "\n\nAfter the code."
    pieces = split_message(text)
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert pieces[0] == intro.strip()  # the break before the code block, not inside it
    assert pieces[1].startswith(code)
    assert all(_fences_balanced(p) for p in pieces)


def test_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "```py\n" + "\n".join(f"value_{i} = compute({i})  # step {i}" for i in range(150)) + "\n```"
    pieces = split_message("Here is the script:\n\n" + code)
    assert len(pieces) >= 3
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert all(_fences_balanced(p) for p in pieces)
    for later in pieces[2:]:
        assert later.startswith("```py\n")  # reopened with the same language
    # No code line is cut in the middle.
    lines = [line for p in pieces for line in p.splitlines() if line.startswith("value_")]
    assert lines == [f"value_{i} = compute({i})  # step {i}" for i in range(150)]


def _citation(n: int, title: str = "Title", url: str = "https://docs.example.com/page") -> Citation:
    return Citation(n=n, title=title, url=url, snippet="…", score=0.9, source="handbook")


def test_source_line_is_a_numbered_masked_link() -> None:
    c = Citation(
        n=2,
        title="Time off [policy]",
        url="https://x.example/a b(c)",
        snippet="",
        score=1.0,
        heading_path=["HR", "Time off [policy]", "Requesting"],
    )
    assert source_line(c) == "**2.** [Time off (policy)](https://x.example/a%20b%28c%29) · HR › Requesting"
    assert source_line(_citation(3, url="")) == "**3.** Title"  # nothing to link to


def test_sources_embed_respects_every_limit() -> None:
    citations = [_citation(i, title="T" * 400, url="https://e.example/" + "p" * 150) for i in range(1, 60)]
    embed = sources_embed(citations, title="S" * 400, footer="F" * 3000)
    assert embed is not None
    assert len(embed.title) <= 256
    assert len(embed.footer.text) <= 2048
    assert len(embed.description) <= EMBED_DESCRIPTION_LIMIT
    assert len(embed) <= EMBED_TOTAL_LIMIT
    assert len(embed.fields) <= 25
    assert embed.description.splitlines()[-1].startswith("…and ")
    assert embed.description.startswith("**1.** [")


def test_answer_embed_lists_sources_and_says_how_it_was_made() -> None:
    answer = Answer(question="q", text="a [1]", citations=[_citation(1), _citation(2)], extractive=True)
    embed = answer_embed(answer)
    assert embed is not None
    assert embed.description.splitlines() == [
        "**1.** [Title](https://docs.example.com/page)",
        "**2.** [Title](https://docs.example.com/page)",
    ]
    assert "👍" in embed.footer.text
    assert answer_embed(Answer(question="q", text="I don't know.", citations=[], abstained=True)) is None


@pytest.mark.parametrize("limit", [8, 0])
def test_absurd_limits_are_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="too small"):
        split_message("x" * 100, limit=limit)


def test_sources_without_a_web_url_show_title_and_breadcrumb_only() -> None:
    local = dataclasses.replace(
        _citation(1, "Deploy", "file:///srv/exports/eng/deploy.html"),
        heading_path=["Eng", "Deploy"],
        doc_id="/srv/exports/eng/deploy.html",
    )
    embed = sources_embed([local, _citation(2, url="/srv/exports/vpn.pdf")])
    assert embed is not None and embed.description is not None
    assert "file://" not in embed.description and "/srv/" not in embed.description
    assert "**1.** Deploy · Eng" in embed.description
