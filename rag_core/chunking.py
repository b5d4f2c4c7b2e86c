"""Structure-aware chunking sized in embedding-model tokens.

A document's Markdown-like text is cut at headings first, then between blocks (paragraphs, lists, code blocks,
tables), then sentences, then words. Code blocks and table rows are kept whole when they fit; a code block that
does not fit is cut between lines with its fence closed and reopened, a table between rows with its header repeated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag_core.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_SPECIAL_TOKENS = 2  # [CLS] and [SEP] the embedding model adds


@dataclass(slots=True)
class _Block:
    kind: str  # "text" | "code" | "table"
    text: str


@dataclass(slots=True)
class _Section:
    headings: list[str]
    blocks: list[_Block]


def _parse(text: str) -> list[_Section]:
    """Split Markdown-like text into heading sections of blocks."""
    sections = [_Section([], [])]
    stack: list[tuple[int, str]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    para: list[str] = []

    def flush_para() -> None:
        if para and any(line.strip() for line in para):
            sections[-1].blocks.append(_Block("text", "\n".join(para).strip("\n")))
        para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush_para()
            marker = fence.group(1)
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                if lines[i].strip().startswith(marker):
                    break
                i += 1
            sections[-1].blocks.append(_Block("code", "\n".join(block)))
            i += 1
            continue
        if line.lstrip().startswith("|"):
            flush_para()
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            sections[-1].blocks.append(_Block("table", "\n".join(rows)))
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_para()
            level, title = len(heading.group(1)), heading.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            sections.append(_Section([t for _, t in stack], []))
        elif not line.strip():
            flush_para()
        elif (
            re.match(r"^\s*([-*+]|\d+[.)])\s+", line)
            and para
            and not re.match(r"^\s*([-*+]|\d+[.)])\s+", para[0])
        ):
            flush_para()  # a list after a paragraph starts a new block
            para.append(line)
        else:
            para.append(line)
        i += 1
    flush_para()
    return [s for s in sections if s.blocks]


class Chunker:
    """Cuts documents into chunks of at most `max_tokens` model tokens, title and heading prefix included."""

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        token_offsets: Callable[[str], list[tuple[int, int]]],
        max_tokens: int,
        overlap_tokens: int,
    ) -> None:
        self.count = count_tokens
        self.offsets = token_offsets
        self.max_tokens = max_tokens
        self.overlap = overlap_tokens

    def split(self, doc: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in _parse(doc.text) or [_Section([], [_Block("text", doc.title)])]:
            heading_path = [*doc.breadcrumb, *section.headings]
            probe = Chunk(doc.id, doc.source, doc.title, "", doc.url, heading_path, 0)
            budget = self.max_tokens - _SPECIAL_TOKENS - self.count(probe.embed_text + "\n")
            budget = max(budget, 32)  # absurdly deep heading paths still leave room for text
            for text, overlap in self._pack(section.blocks, budget):
                chunks.append(
                    Chunk(
                        doc.id,
                        doc.source,
                        doc.title,
                        text,
                        doc.url,
                        heading_path,
                        len(chunks),
                        overlap,
                        tuple(doc.access.readers()),
                    )
                )
        return chunks

    # -- packing ----------------------------------------------------------------------------------------------

    def _pack(self, blocks: list[_Block], budget: int) -> list[tuple[str, int]]:
        """Greedy packing of whole pieces; each chunk after the first starts with the previous one's tail."""
        reserve = self.overlap + 3 if self.overlap > 0 else 0  # overlap tokens, the "…" and the blank line
        pieces: list[tuple[str, int]] = []
        for block in blocks:
            n = self.count(block.text)
            if n <= budget - reserve:
                pieces.append((block.text, n))
            else:
                pieces.extend((p, self.count(p)) for p in self._split_block(block, budget - reserve))
        out: list[str] = []
        current: list[str] = []
        used = 0
        for text, n in pieces:
            if current and used + n + 1 > budget - (reserve if out else 0):
                out.append("\n\n".join(current))
                current, used = [], 0
            current.append(text)
            used += n + 1
        if current:
            out.append("\n\n".join(current))
        if not out:
            return []
        return [
            (out[0], 0),
            *(self._with_overlap(prev, text) for prev, text in zip(out, out[1:], strict=False)),
        ]

    def _with_overlap(self, previous: str, text: str) -> tuple[str, int]:
        """`text` preceded by the last `overlap` tokens of `previous`; returns the text and the prefix length."""
        if self.overlap <= 0 or previous.rstrip().endswith(("```", "~~~", "|")):
            return text, 0  # a code fence or table row cut in half would mislead more than help
        spans = self.offsets(previous)
        if len(spans) <= self.overlap:
            return text, 0
        prefix = f"…{previous[spans[-self.overlap][0] :].strip()}\n\n"
        return prefix + text, len(prefix)

    def _split_block(self, block: _Block, budget: int) -> list[str]:
        if block.kind == "code":
            return self._split_lines(block.text, budget, code=True)
        if block.kind == "table":
            return self._split_lines(block.text, budget, code=False)
        return self._split_text(block.text, budget)

    def _split_lines(self, text: str, budget: int, code: bool) -> list[str]:
        lines = text.split("\n")
        if code:
            opener, body = lines[0], lines[1:]
            closer = body.pop() if body and _FENCE.match(body[-1]) else lines[0].strip()[:3]
            head, tail = [opener], [closer]
        else:
            header = (
                lines[:2] if len(lines) > 2 and set(lines[1].replace("|", "").strip()) <= set("-: ") else []
            )
            head, body, tail = header, lines[len(header) :], []
        fixed = self.count("\n".join(head + tail)) + 2
        if fixed > budget // 2:  # a header too big to repeat (a very wide table) is kept once, as a row
            body, head, tail = head + body + tail, [], []
            fixed = 0
        out: list[str] = []
        current: list[str] = []
        used = fixed
        for line in body:
            n = self.count(line) + 1
            if fixed + n > budget:  # one line longer than a chunk: cut it by words
                if current:
                    out.append("\n".join(head + current + tail))
                    current, used = [], fixed
                out.extend(
                    "\n".join(head + [part] + tail) for part in self._split_words(line, budget - fixed)
                )
                continue
            if current and used + n > budget:
                out.append("\n".join(head + current + tail))
                current, used = [], fixed
            current.append(line)
            used += n
        if current:
            out.append("\n".join(head + current + tail))
        return out

    def _split_text(self, text: str, budget: int) -> list[str]:
        sentences = [s for s in _SENTENCE_END.split(text) if s and s.strip()]
        out: list[str] = []
        current: list[str] = []
        used = 0
        for sentence in sentences:
            n = self.count(sentence) + 1
            if n > budget:
                if current:
                    out.append(" ".join(current))
                    current, used = [], 0
                out.extend(self._split_words(sentence, budget))
                continue
            if current and used + n > budget:
                out.append(" ".join(current))
                current, used = [], 0
            current.append(sentence.strip())
            used += n
        if current:
            out.append(" ".join(current))
        return out

    def _split_words(self, text: str, budget: int) -> list[str]:
        """Last resort: cut at word boundaries near every `budget` model tokens."""
        budget = max(budget, 8)
        spans = self.offsets(text)
        out: list[str] = []
        start_tok = 0
        while start_tok < len(spans):
            end_tok = min(start_tok + budget, len(spans))
            if end_tok < len(spans):
                # step back to a token that starts a word, so words stay whole
                back = end_tok
                while back > start_tok + budget // 2 and spans[back][0] == spans[back - 1][1]:
                    back -= 1
                end_tok = back if back > start_tok + budget // 2 else end_tok
            start_char = spans[start_tok][0]
            end_char = spans[end_tok][0] if end_tok < len(spans) else len(text)
            piece = text[start_char:end_char].strip()
            if piece:
                out.append(piece)
            start_tok = end_tok
        return out
