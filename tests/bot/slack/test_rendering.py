"""Markdown → mrkdwn, Block Kit limits, and Slack text → plain question text."""

from __future__ import annotations

import json

from bot.slack.blocks import MAX_BLOCKS, answer_blocks, failure_blocks, sources_blocks, sources_text
from bot.slack.delivery import plain_with_sources
from bot.slack.mrkdwn import SECTION_TEXT_LIMIT, markdown_to_mrkdwn, mrkdwn_to_plain, split_mrkdwn
from rag_core.types import Answer, Citation


def test_inline_markdown_becomes_mrkdwn() -> None:
    md = "Use **bold**, __also bold__, *italic*, _italic_, ~~gone~~ and `a < b` [1][2]."
    assert (
        markdown_to_mrkdwn(md) == "Use *bold*, *also bold*, _italic_, _italic_, ~gone~ and `a &lt; b` [1][2]."
    )


def test_links_headings_lists_quotes_and_rules() -> None:
    md = (
        "# Deploying\n"
        "See [the runbook](https://wiki.example.com/run?a=1&b=2) or <https://x.example.com>.\n"
        "- first\n"
        "  * nested **bold**\n"
        "1. numbered stays\n"
        "> quoted\n"
        "---"
    )
    assert markdown_to_mrkdwn(md).split("\n") == [
        "*Deploying*",
        "See <https://wiki.example.com/run?a=1&amp;b=2|the runbook> or <https://x.example.com>.",
        "• first",
        "    • nested *bold*",
        "1. numbered stays",
        "> quoted",
        "──────────",
    ]


def test_code_blocks_are_kept_verbatim_but_escaped() -> None:
    md = "Run:\n```bash\nif [ $a < 3 ] && **not bold**; then\n```\nafter"
    assert markdown_to_mrkdwn(md) == "Run:\n```\nif [ $a &lt; 3 ] &amp;&amp; **not bold**; then\n```\nafter"
    # A fence still open in a streamed partial answer is closed so the message renders.
    assert markdown_to_mrkdwn("```\npartial").endswith("```")


def test_special_characters_are_escaped_and_snake_case_is_not_italic() -> None:
    assert markdown_to_mrkdwn("R&D <team> uses snake_case_names and 2*3*4") == (
        "R&amp;D &lt;team&gt; uses snake_case_names and 2*3*4"
    )


def test_split_respects_the_section_limit_and_keeps_code_fences_balanced() -> None:
    text = "```\n" + "\n".join(f"line {i} " + "x" * 60 for i in range(150)) + "\n```"
    pieces = split_mrkdwn(text)
    assert len(pieces) > 1
    for piece in pieces:
        assert len(piece) <= SECTION_TEXT_LIMIT
        assert piece.count("```") % 2 == 0
    one_long_line = split_mrkdwn("y" * 7000)
    assert len(one_long_line) == 3 and "".join(one_long_line) == "y" * 7000
    assert all(len(p) <= SECTION_TEXT_LIMIT for p in one_long_line)


def _citation(n: int, url: str = "https://wiki.example.com/p") -> Citation:
    return Citation(
        n=n, title=f"Page {n}", url=url, snippet="s", score=0.5, heading_path=["Team", f"Page {n}"]
    )


def test_answer_blocks_stay_within_block_kit_limits() -> None:
    long = "\n\n".join("paragraph " + "word " * 500 for _ in range(200))
    blocks = answer_blocks(Answer(question="q", text=long, citations=[_citation(i) for i in range(1, 6)]))
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_LIMIT for b in blocks if b["type"] == "section")
    assert "shortened" in str(blocks)
    assert "Page 5" in str(blocks[-3]) and "React with" in str(blocks[-2])
    assert blocks[-1]["type"] == "actions"  # 👍/👎 and "Get help from a person" buttons


def test_citations_link_web_urls_only_and_show_breadcrumbs() -> None:
    blocks = answer_blocks(
        Answer(question="q", text="a [1] [2]", citations=[_citation(1), _citation(2, "file:///tmp/x.html")])
    )
    sources = blocks[2]["text"]["text"]
    assert "*[1]* <https://wiki.example.com/p|Page 1>  ·  _Team_" in sources
    assert "*[2]* Page 2  ·  _Team_" in sources


def test_abstained_answer_lists_the_closest_sources() -> None:
    answer = Answer(question="q", text="I don't know.", citations=[_citation(1)], abstained=True)
    assert "Closest sources" in str(answer_blocks(answer))


def test_failure_and_empty_sources_render_a_message() -> None:
    assert "warning" in failure_blocks("Sorry <x>", [])[0]["text"]["text"]
    assert "&lt;x&gt;" in failure_blocks("Sorry <x>", [])[0]["text"]["text"]
    assert "No sources found" in sources_blocks("q", [])[0]["text"]["text"]


def test_slack_text_becomes_a_plain_question() -> None:
    text = "<@UBOT>  what is R&amp;D's budget for <#C1|general>? see <https://x.example.com|this> cc <@U2>"
    assert mrkdwn_to_plain(text, drop_user="UBOT") == (
        "what is R&D's budget for #general? see this (https://x.example.com) cc @U2"
    )


def test_no_text_or_block_shows_a_local_path() -> None:
    local = [
        _citation(1, "file:///srv/exports/eng/deploy.html"),
        _citation(2, "/srv/exports/eng/vpn.pdf"),
        Citation(n=3, title="", url="file:///srv/x/y.html", snippet="s", score=0.4, doc_id="/srv/x/y.html"),
    ]
    answer = Answer(question="q", text="a [1] [2] [3]", citations=local)
    rendered = [
        sources_text(local),
        json.dumps(sources_blocks("q", local)),
        json.dumps(answer_blocks(answer)),
        json.dumps(failure_blocks("Sorry", local)),
        plain_with_sources("a", local),
    ]
    for text in rendered:
        assert "file://" not in text and "/srv/" not in text, text
    # The title and its breadcrumb stay.
    assert "1. Page 1 · Team" in sources_text(local)
    assert "Page 2" in rendered[1] and "Team" in rendered[1]
