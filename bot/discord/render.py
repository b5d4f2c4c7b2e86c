"""Discord rendering: answers split to the 2,000-character message limit, sources as an embed within its limits.

Discord renders Markdown itself, so answer text stays Markdown; only its length and code fences need care.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from rag_core.types import Answer, Citation

MESSAGE_LIMIT = 2000  # characters per message
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000  # title + description + fields + footer + author, summed
SOURCE_LINE_LIMIT = 350  # one numbered source line, so a long title cannot crowd out the others

_FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")
_SENTENCE_END = re.compile(r"[.!?][)\]\"']*\s")
_CLOSE_FENCE = "\n```"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


# --- message splitting ------------------------------------------------------------------------------------


def _fence_at(text: str, end: int, open_fence: str | None) -> str | None:
    """The fence line (e.g. "```py") still open at `text[end]`, given the one open where `text` starts."""
    for line in text[:end].splitlines():
        match = _FENCE.match(line)
        if match:
            if open_fence is None:
                open_fence = line.strip()
            elif match.group(2).strip() == "":
                open_fence = None
    return open_fence


def _best_cut(window: str, open_fence: str | None) -> tuple[int, bool]:
    """Where to end a piece inside `window`, and whether that point sits inside a code block.

    Preference: paragraph, then line, then sentence break outside code; then a line break inside code;
    then a space; then a hard cut. Breaks in the first quarter are ignored so pieces stay substantial.
    """
    floor = len(window) // 4

    def outside(positions: Sequence[int]) -> int | None:
        for p in reversed(positions):
            if p > floor and _fence_at(window, p, open_fence) is None:
                return p
        return None

    paragraphs = [m.start() for m in re.finditer(r"\n\s*\n", window)]
    lines = [m.start() for m in re.finditer(r"\n", window)]
    sentences = [m.end() for m in _SENTENCE_END.finditer(window)]
    for positions in (paragraphs, lines, sentences):
        cut = outside(positions)
        if cut is not None:
            return cut, False
    in_code = [p for p in lines if p > floor and _fence_at(window, p, open_fence) is not None]
    if in_code:
        return in_code[-1], True
    spaces = [m.start() for m in re.finditer(r" ", window) if m.start() > floor]
    cut = spaces[-1] if spaces else len(window)
    return cut, _fence_at(window, cut, open_fence) is not None


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`text` as messages of at most `limit` characters, split at paragraph/line/sentence boundaries.

    A code block is split only when no other break fits; then it is closed at the end of one piece and
    reopened (same language) at the start of the next, so each piece renders on its own.
    """
    text = text.strip()
    if not text:
        return []
    pieces: list[str] = []
    open_fence: str | None = None  # fence carried over from the previous piece
    rest = text
    while rest:
        prefix = f"{open_fence}\n" if open_fence else ""
        budget = limit - len(prefix) - len(_CLOSE_FENCE)
        if budget < 16:
            raise ValueError(f"message limit {limit} is too small to split code blocks")
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        cut, in_code = _best_cut(rest[:budget], open_fence)
        body = rest[:cut]
        if in_code:
            fence = _fence_at(rest, cut, open_fence)
            pieces.append(prefix + body.rstrip("\n") + _CLOSE_FENCE)
            open_fence = fence
            rest = rest[cut:].removeprefix("\n")
        else:
            pieces.append((prefix + body).rstrip())
            open_fence = None
            rest = rest[cut:].lstrip()
    return [p for p in pieces if p.strip()]


# --- sources embed ----------------------------------------------------------------------------------------


def _link_text(title: str) -> str:
    # Square brackets would end a masked link early.
    return title.replace("[", "(").replace("]", ")").replace("\n", " ").strip() or "untitled"


def _safe_url(url: str) -> str | None:
    """The URL made safe inside `(...)` of a masked link, or None when Discord would not link it."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        return None
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def source_line(citation: Citation) -> str:
    """`**1.** [Title](url) · Section` — a numbered, linked source."""
    name = _link_text(citation.title)
    url = _safe_url(citation.url)
    where = " › ".join(h for h in citation.heading_path if h and h != citation.title)
    suffix = f" · {where}" if where else ""
    if url:
        room = SOURCE_LINE_LIMIT - len(f"**{citation.n}.** []({url})")
        if room < 16:  # a URL too long to link with a readable title: show the title only
            return clip(f"**{citation.n}.** {name}{suffix}", SOURCE_LINE_LIMIT)
        label = clip(name, min(room, EMBED_TITLE_LIMIT))
        room -= len(label)
        return f"**{citation.n}.** [{label}]({url}){clip(suffix, room) if room > 4 else ''}"
    return clip(f"**{citation.n}.** {name}{suffix}", SOURCE_LINE_LIMIT)


def answer_footer(answer: Answer) -> str:
    """One line under the sources saying how the answer was made."""
    if answer.abstained:
        return "The closest sources; none was relevant enough to answer from."
    return "React 👍 or 👎 to rate this answer."


def sources_embed(
    citations: Sequence[Citation], *, title: str = "Sources", footer: str | None = None
) -> discord.Embed | None:
    """An embed listing the citations as numbered links, kept inside every Discord embed limit."""
    if not citations and not footer:
        return None
    embed = discord.Embed(title=clip(title, EMBED_TITLE_LIMIT), colour=discord.Colour.blurple())
    footer_text = clip(footer, EMBED_FOOTER_LIMIT) if footer else ""
    budget = min(EMBED_DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - len(embed.title or "") - len(footer_text))
    lines: list[str] = []
    used = 0
    for i, citation in enumerate(citations):
        line = source_line(citation)
        more = f"…and {len(citations) - i} more"
        # Keep room for the "and N more" line in case a later source does not fit.
        if used + len(line) + 1 + len(more) > budget and i < len(citations) - 1:
            lines.append(more)
            break
        if used + len(line) > budget:
            lines.append(more)
            break
        lines.append(line)
        used += len(line) + 1
    embed.description = "\n".join(lines) if lines else None
    if footer_text:
        embed.set_footer(text=footer_text)
    return embed


def answer_embed(answer: Answer) -> discord.Embed | None:
    """The sources embed shown under a finished answer."""
    if not answer.citations:
        return None
    return sources_embed(answer.citations, footer=answer_footer(answer))
