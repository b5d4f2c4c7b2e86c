"""HTML (Confluence pages, Google Docs exports, plain HTML files) to Markdown-like text.

Keeps what the chunker and a reader need: `#` headings, `-`/`1.` lists (nested, with task boxes), pipe tables,
fenced code with its language, and Confluence panels/macros as quoted blocks. Drops styling, scripts and icons.
"""

from __future__ import annotations

from typing import TypeGuard

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, PageElement, ProcessingInstruction

_SKIP = {
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "title",
    "meta",
    "link",
    "button",
    "svg",
    "iframe",
}
_SKIP_CLASSES = {"expand-control-icon", "aui-icon", "confluence-embedded-file-wrapper", "hidden"}
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "form", "fieldset", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "table", "pre", "blockquote", "hr",
    "body", "html", "figcaption", "details", "summary", "center",
}  # fmt: skip
_MACRO_LABELS = {"information": "Info", "note": "Note", "warning": "Warning", "tip": "Tip"}
_DEFAULT_EXPAND_LABEL = "click here to expand..."


def parse_html(data: bytes | str) -> BeautifulSoup:
    """Parse with lxml; BeautifulSoup finds the encoding from the BOM, `<meta charset>` or the bytes."""
    return BeautifulSoup(data, "lxml")


def html_to_markdown(root: Tag) -> str:
    """The element's content as Markdown-like text, blocks separated by blank lines."""
    return "\n\n".join(b for b in _blocks(root) if b.strip())


def _classes(el: Tag) -> set[str]:
    return set(el.get("class") or [])


def _collapse(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


def _skipped(el: Tag) -> bool:
    return el.name in _SKIP or bool(_classes(el) & _SKIP_CLASSES) or el.get("aria-hidden") == "true"


def _inline(*nodes: PageElement) -> str:
    """Text of an inline run, whitespace collapsed except explicit line breaks."""
    parts: list[str] = []

    def walk(node: PageElement) -> None:
        if isinstance(node, NavigableString):
            if not isinstance(node, _NOT_TEXT):
                parts.append(
                    str(node).replace("\n", " ")
                )  # source newlines are spaces; only <br> breaks lines
            return
        if not isinstance(node, Tag):  # every PageElement is one of the two; this tells the type checker
            return
        if _skipped(node):
            return
        if node.name == "br":
            parts.append("\n")
        elif node.name == "img":
            alt = node.get("alt") or ""
            if alt and "emoticon" not in _classes(node):
                parts.append(f" {alt} ")
        elif node.name == "code":
            parts.append(f"`{_collapse(node.get_text())}`")
        else:
            for child in node.children:
                walk(child)

    for node in nodes:
        walk(node)
    lines = [_collapse(line) for line in "".join(parts).split("\n")]
    return "\n".join(line for line in lines if line)


def _is_block(node: PageElement) -> TypeGuard[Tag]:
    return isinstance(node, Tag) and (node.name in _BLOCKS or _has_block_child(node))


def _has_block_child(el: Tag) -> bool:
    # An inline wrapper (span, a) around block content, as Confluence macros often are.
    return el.name in ("span", "a", "font") and any(
        isinstance(c, Tag) and c.name in _BLOCKS for c in el.descendants
    )


def _blocks(el: Tag) -> list[str]:
    """The block children of `el` rendered one string each; loose inline runs become paragraphs."""
    return _blocks_of(list(el.children))


def _blocks_of(children: list[PageElement]) -> list[str]:
    blocks: list[str] = []
    run: list[PageElement] = []

    def flush() -> None:
        text = _inline(*run)
        if text:
            blocks.append(text)
        run.clear()

    for child in children:
        if isinstance(child, Tag) and _skipped(child):
            continue
        if _is_block(child):
            flush()
            blocks.extend(_block(child))
        else:
            run.append(child)
    flush()
    return blocks


def _block(el: Tag) -> list[str]:
    name = el.name
    classes = _classes(el)
    if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
        text = _collapse(_inline(el))
        return [f"{'#' * int(name[1])} {text}"] if text else []
    if name == "p":
        if "title" in classes:  # Google Docs: the paragraph styled "Title"
            text = _collapse(_inline(el))
            return [f"# {text}"] if text else []
        text = _inline(el)
        return [text] if text else []
    if name in ("ul", "ol"):
        return [_list(el)] if el.find("li") else []
    if name == "table":
        return [_table(el)] if el.find("tr") else []
    if name == "pre":
        return [fenced_code(el.get_text(), _code_language(el))]
    if name == "blockquote":
        return [_quote(_blocks(el))]
    if name == "dl":
        return [_definitions(el)]
    if name == "hr":
        return []
    if name == "div":
        macro = next((c for c in classes if c.startswith("confluence-information-macro-")), None)
        if macro and macro != "confluence-information-macro-icon":
            return [_macro(el, _MACRO_LABELS.get(macro.rsplit("-", 1)[-1], "Note"))]
        if "panel" in classes and "code" not in classes and el.find(class_="panelContent"):
            return [_panel(el)]
        if "expand-container" in classes:
            return _expand(el)
    return _blocks(el)


def _macro(el: Tag, label: str) -> str:
    title_el = el.find("p", class_="title")
    title = _collapse(title_el.get_text()) if title_el else ""
    body_el = el.find(class_="confluence-information-macro-body") or el
    body = _blocks(body_el) if body_el is not el else [b for b in _blocks(el) if b != title]
    if title:
        return _quote([f"{label}: {title}", *body])
    return _quote([f"{label}: {body[0]}" if body else f"{label}:", *body[1:]])


def _panel(el: Tag) -> str:
    header = el.find(class_="panelHeader")
    content = el.find(class_="panelContent")
    head = [_collapse(header.get_text())] if header and header.get_text(strip=True) else []
    return _quote([*head, *(_blocks(content) if content else [])])


def _expand(el: Tag) -> list[str]:
    label_el = el.find(class_="expand-control-text")
    content = el.find(class_="expand-content")
    label = _collapse(label_el.get_text()) if label_el else ""
    body = _blocks(content) if content else []
    if label and label.lower() != _DEFAULT_EXPAND_LABEL:
        return [label, *body]
    return body


def _quote(blocks: list[str]) -> str:
    lines: list[str] = []
    for i, block in enumerate(b for b in blocks if b.strip()):
        if i:
            lines.append(">")
        lines.extend(f"> {line}" if line else ">" for line in block.split("\n"))
    return "\n".join(lines)


def _list(el: Tag, depth: int = 0) -> str:
    ordered = el.name == "ol"
    tasks = "inline-task-list" in _classes(el) or "task-list" in _classes(el)
    start_attr = str(el.get("start", "1"))
    start = int(start_attr) if start_attr.isdigit() else 1
    depth += _google_docs_level(el)
    indent = "  " * depth
    lines: list[str] = []
    n = start
    for li in el.find_all("li", recursive=False):
        marker = f"{n}." if ordered else "-"
        n += 1
        if tasks:
            marker += " [x]" if "checked" in _classes(li) else " [ ]"
        nested = [_list(c, depth + 1) for c in li.children if isinstance(c, Tag) and c.name in ("ul", "ol")]
        own = _blocks_of([c for c in li.children if not (isinstance(c, Tag) and c.name in ("ul", "ol"))])
        first, rest = (own[0], own[1:]) if own else ("", [])
        first_lines = first.split("\n")
        lines.append(f"{indent}{marker} {first_lines[0]}".rstrip())
        cont = indent + " " * (len(marker) + 1)
        lines.extend(f"{cont}{line}" for line in first_lines[1:])
        for block in rest:
            lines.extend(f"{cont}{line}" for line in block.split("\n"))
        lines.extend(nested)
    return "\n".join(lines)


def _google_docs_level(el: Tag) -> int:
    # Google Docs writes each nesting level as its own flat list with a class like "lst-kix_abc-2".
    for c in _classes(el):
        if c.startswith("lst-kix_") and "-" in c:
            level = c.rsplit("-", 1)[-1]
            if level.isdigit():
                return int(level)
    return 0


def _rows(table: Tag) -> list[Tag]:
    rows: list[Tag] = []
    for child in table.children:
        if not isinstance(child, Tag):
            continue
        if child.name == "tr":
            rows.append(child)
        elif child.name in ("thead", "tbody", "tfoot"):
            rows.extend(r for r in child.children if isinstance(r, Tag) and r.name == "tr")
    return rows


def _cell_text(cell: Tag) -> str:
    return " ".join(_collapse(b.replace("\n", " ")) for b in _blocks(cell))


def _table(table: Tag) -> str:
    # The first row is the header (Markdown needs one); Google Docs and many pages mark it only by style.
    grid: list[list[str]] = []
    for tr in _rows(table):
        cells = [c for c in tr.children if isinstance(c, Tag) and c.name in ("td", "th")]
        row: list[str] = []
        for cell in cells:
            row.append(_cell_text(cell))
            span = str(cell.get("colspan", "1"))
            row.extend([""] * (int(span) - 1 if span.isdigit() and int(span) > 1 else 0))
        if any(row):
            grid.append(row)
    return markdown_table(grid)


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cell texts as a pipe table; the first row is the header. Pipes and newlines in cells are escaped."""
    grid = [[" ".join(c.replace("|", "\\|").split()) for c in row] for row in rows]
    grid = [row for row in grid if any(row)]
    if not grid:
        return ""
    width = max(len(r) for r in grid)
    grid = [r + [""] * (width - len(r)) for r in grid]
    lines = [_pipe_row(grid[0]), _pipe_row(["---"] * width)]
    lines.extend(_pipe_row(r) for r in grid[1:])
    return "\n".join(lines)


def _pipe_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _code_language(pre: Tag) -> str:
    params = str(pre.get("data-syntaxhighlighter-params") or "")
    for part in params.split(";"):
        key, _, value = part.partition(":")
        if key.strip() == "brush" and value.strip():
            return value.strip()
    code = pre.find("code")
    for el in (pre, code) if code else (pre,):
        for c in _classes(el):
            if c.startswith(("language-", "lang-")):
                return c.split("-", 1)[1]
    return ""


def fenced_code(code: str, language: str = "") -> str:
    code = code.strip("\n")
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}{language}\n{code}\n{fence}"


def _definitions(dl: Tag) -> str:
    lines: list[str] = []
    term = ""
    for child in dl.children:
        if not isinstance(child, Tag):
            continue
        text = _collapse(" ".join(_blocks(child)).replace("\n", " "))
        if child.name == "dt":
            term = text
        elif child.name == "dd":
            lines.append(f"- {term}: {text}" if term else f"- {text}")
            term = ""
    if term:
        lines.append(f"- {term}")
    return "\n".join(lines)
