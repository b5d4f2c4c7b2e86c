"""Block Kit renderings of answers, sources and apologies, within Slack's limits."""

from __future__ import annotations

from typing import Any

from bot.slack.buttons import answer_actions
from bot.slack.mrkdwn import (
    SECTION_TEXT_LIMIT,
    escape,
    is_web_url,
    link,
    markdown_to_mrkdwn,
    split_mrkdwn,
    truncate,
)
from rag_core.types import Answer, Citation

MAX_BLOCKS = 50  # Block Kit: max blocks per message
MESSAGE_TEXT_LIMIT = 3900  # fallback/notification text; Slack truncates message text past ~4000 characters
VOTE_HINT = "Was this helpful? React with :+1: or :-1: to tell us."
SEARCHING = ":mag: Searching…"

Block = dict[str, Any]


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_LIMIT)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_LIMIT)}]}


def _breadcrumb(c: Citation) -> str:
    path = [h for h in c.heading_path if h and h != c.title]
    return " › ".join(path)


def title_of(c: Citation) -> str:
    """The citation's title; a document id only when it is no path (ids of file exports are paths)."""
    if c.title:
        return c.title
    if c.doc_id and "/" not in c.doc_id and "\\" not in c.doc_id:
        return c.doc_id
    return "untitled"


def citation_line(c: Citation) -> str:
    """`[n] <url|title> · breadcrumb` for the sources list under an answer."""
    crumb = _breadcrumb(c)
    line = f"*[{c.n}]* {link(c.url, title_of(c))}"
    return f"{line}  ·  _{escape(crumb)}_" if crumb else line


def _sources_section(citations: list[Citation], heading: str) -> list[Block]:
    if not citations:
        return []
    lines = [f"*{heading}*", *(citation_line(c) for c in citations)]
    return [_section(piece) for piece in split_mrkdwn("\n".join(lines))]


def answer_blocks(answer: Answer, actions: Block | None = None) -> list[Block]:
    """The final answer: text in mrkdwn, numbered linked sources, the 👍/👎 hint and buttons (`actions`, by
    default votes and "Get help from a person")."""
    blocks: list[Block] = [
        _section(p) for p in split_mrkdwn(markdown_to_mrkdwn(answer.text) or "_(empty answer)_")
    ]
    tail: list[Block] = []
    if answer.citations:
        heading = "Closest sources" if answer.abstained else "Sources"
        tail += [{"type": "divider"}, *_sources_section(answer.citations, heading)]
    tail.append(_context(VOTE_HINT))
    tail.append(actions or answer_actions(answer.id, abstained=answer.abstained))
    room = MAX_BLOCKS - len(tail)
    if len(blocks) > room:
        blocks = blocks[: room - 1] + [
            _context("_Answer shortened to fit in Slack; see the sources for more._")
        ]
    return blocks + tail


def answer_text(answer: Answer) -> str:
    """Plain fallback text for notifications and clients that cannot show blocks."""
    return truncate(markdown_to_mrkdwn(answer.text), MESSAGE_TEXT_LIMIT)


def streaming_text(partial_markdown: str) -> str:
    """The answer so far, as shown while it streams."""
    return truncate(markdown_to_mrkdwn(partial_markdown), MESSAGE_TEXT_LIMIT - 2) + " …"


def failure_blocks(message: str, citations: list[Citation]) -> list[Block]:
    blocks = [_section(f":warning: {escape(message)}")]
    blocks += _sources_section(citations, "Sources found")
    return blocks[:MAX_BLOCKS]


def sources_blocks(question: str, citations: list[Citation]) -> list[Block]:
    """`/sources`: title link, breadcrumb, snippet and score for each source, no generated text."""
    if not citations:
        return [_section(f"No sources found for “{escape(truncate(question, 200))}”.")]
    blocks: list[Block] = [_context(f"Top sources for “{escape(truncate(question, 200))}”")]
    for c in citations:
        if len(blocks) + 2 > MAX_BLOCKS:
            break
        crumb = _breadcrumb(c)
        lines = [f"*{c.n}. {link(c.url, title_of(c))}*"]
        if crumb:
            lines.append(f"_{escape(crumb)}_")
        snippet = " ".join(c.snippet.split())
        if snippet:
            lines.append(f"> {escape(truncate(snippet, 600))}")
        blocks.append(_section("\n".join(lines)))
        meta = f"score {c.score:.2f}" + (f"  ·  {escape(c.source)}" if c.source else "")
        blocks.append(_context(meta))
    return blocks


def sources_text(citations: list[Citation]) -> str:
    """Notification text of `/sources`: title, breadcrumb, and the URL only when it is a web one."""
    if not citations:
        return "No sources found."
    lines = []
    for c in citations:
        crumb = _breadcrumb(c)
        line = f"{c.n}. {title_of(c)}" + (f" · {crumb}" if crumb else "")
        lines.append(f"{line} {c.url}" if is_web_url(c.url) else line)
    return truncate("\n".join(lines), MESSAGE_TEXT_LIMIT)
