"""Markdown (as the engine writes it) → Slack mrkdwn, and splitting mrkdwn to fit Block Kit's limits."""

from __future__ import annotations

import re

SECTION_TEXT_LIMIT = 3000  # Block Kit: max characters of a section's text

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^(\s*)>\s?(.*)$")

# Inline constructs, tried left to right; the earliest match wins, then the longest alternative listed first.
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|!?\[(?P<link_text>[^\]\n]+)\]\((?P<link_url>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|<(?P<auto>(?:https?|mailto):[^>\s]+)>"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|__(?P<bold2>.+?)__"
    r"|~~(?P<strike>.+?)~~"
    r"|(?<![\w*])\*(?![\s*])(?P<em>.+?)(?<![\s*])\*(?![\w*])"
    r"|(?<![\w_])_(?![\s_])(?P<em2>.+?)(?<![\s_])_(?![\w_])"
)


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_url(url: str) -> str:
    return escape(url).replace("|", "%7C")


def is_web_url(url: str) -> bool:
    """Only web URLs are ever shown: file:// and server paths would leak where the exports live."""
    return url.startswith(("https://", "http://"))


def link(url: str, title: str) -> str:
    """A mrkdwn link; a plain title when there is no web URL (Slack cannot open file:// and the like)."""
    label = escape(title).replace("|", "¦")
    return f"<{_escape_url(url)}|{label}>" if is_web_url(url) else label


def _inline(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[pos : m.start()]))
        pos = m.end()
        g = m.groupdict()
        if g["code"]:
            out.append(f"`{escape(g['code_text'].strip())}`")
        elif g["link_url"]:
            title = _inline(g["link_text"]).replace("|", "¦")
            out.append(f"<{_escape_url(g['link_url'])}|{title}>")
        elif g["auto"]:
            out.append(f"<{_escape_url(g['auto'])}>")
        elif g["bold"] or g["bold2"]:
            out.append(f"*{_inline(g['bold'] or g['bold2'])}*")
        elif g["strike"]:
            out.append(f"~{_inline(g['strike'])}~")
        else:
            out.append(f"_{_inline(g['em'] or g['em2'])}_")
    out.append(escape(text[pos:]))
    return "".join(out)


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to Slack mrkdwn: bold, italics, strike, links, headings as bold lines, bullet lists,
    quotes and code kept, `&<>` escaped. Citation markers like `[1]` pass through unchanged."""
    lines: list[str] = []
    in_code = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            # Slack ignores the language after the fence and needs the fence on its own.
            lines.append("```")
            in_code = not in_code
            continue
        if in_code:
            lines.append(escape(line))
            continue
        if m := _HEADING.match(line):
            heading = _inline(m.group(1)).strip()
            lines.append(f"*{heading.strip('*')}*" if heading else "")
        elif _RULE.match(line):
            lines.append("──────────")
        elif m := _BULLET.match(line):
            depth = len(m.group(1).expandtabs(4)) // 2
            lines.append(f"{'    ' * depth}• {_inline(m.group(2))}")
        elif m := _QUOTE.match(line):
            lines.append(f"> {_inline(m.group(2))}")
        else:
            lines.append(_inline(line))
    if in_code:
        lines.append("```")  # close an unterminated fence (e.g. a partial streamed answer)
    return "\n".join(lines).strip("\n")


def split_mrkdwn(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Split mrkdwn into pieces of at most `limit` characters, on line boundaries where possible, closing and
    reopening code fences so each piece renders on its own."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False

    def flush() -> None:
        nonlocal current, size
        if current:
            if in_code:
                current.append("```")
            pieces.append("\n".join(current))
        current = ["```"] if in_code else []
        size = sum(len(x) + 1 for x in current)

    reserve = 4  # room for a closing fence
    for line in text.split("\n"):
        while len(line) > limit - reserve - 4:
            head, line = line[: limit - reserve - 8], line[limit - reserve - 8 :]
            if size + len(head) + 1 > limit - reserve:
                flush()
            current.append(head)
            size += len(head) + 1
            flush()
        closes_code = in_code and line.strip() == "```"
        if size + len(line) + 1 > (limit if closes_code else limit - reserve) and current:
            flush()
        current.append(line)
        size += len(line) + 1
        if line.strip() == "```":
            in_code = not in_code
    if current and any(x.strip() for x in current if x != "```"):
        pieces.append("\n".join(current))
    return [p for p in pieces if p.strip()] or [""]


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_SLACK_ENTITY = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def mrkdwn_to_plain(text: str, drop_user: str | None = None) -> str:
    """A Slack message's text as plain words: the `drop_user` mention removed, other mentions, channels and links
    reduced to their labels, entities unescaped."""

    def entity(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            return "" if drop_user and target[1:] == drop_user else f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return f"@{label or target[1:].split('^')[0]}"
        return f"{label} ({target})" if label and label != target else target

    plain = _SLACK_ENTITY.sub(entity, text or "")
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", plain).strip()
