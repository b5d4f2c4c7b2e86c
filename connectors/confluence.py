"""Confluence space export, HTML format (zip or unpacked folder), and the XML format via `confluence_xml`.

Layout read here: `index.html` (space details, page tree), pages `<Title>_<pageId>.html` or `<pageId>.html`
(breadcrumbs `#breadcrumbs`, title `#title-text` "SPACE : Title", `div.page-metadata`, body `div#main-content`),
and `attachments/<pageId>/<id>.<ext>`, indexed when their type is one the Drive reader reads too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import quote

from bs4 import BeautifulSoup, Tag

from connectors.archive import Entry, Export, Limits, open_export
from connectors.base import Reader
from connectors.errors import ExportUnavailable, ExtractError, Skipped
from connectors.formats import extract, supported
from connectors.html_markdown import html_to_markdown, parse_html
from connectors.parse_pool import Deferred
from rag_core.permissions import PUBLIC
from rag_core.types import Document

# Confluence's page frame around the body: present on an emptied page, which is exported without div#main-content.
_PAGE_FRAME = "#title-text, #main-header, div.page-metadata, #breadcrumbs"
_DATE_FORMATS = ("%b %d, %Y", "%b %d, %Y %H:%M", "%d %b %Y", "%d %B %Y", "%B %d, %Y", "%Y-%m-%d", "%d.%m.%Y")


def page_id_of(filename: str) -> str:
    """`On-call-runbook_65538.html` -> "65538"; `65538.html` -> "65538"; other names -> their stem."""
    stem = PurePosixPath(filename).stem
    tail = stem.rsplit("_", 1)[-1]
    return tail if tail.isdigit() else stem


def parse_confluence_date(text: str) -> datetime | None:
    text = " ".join(text.split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class ConfluenceReader(Reader):
    def items(self) -> Iterator[Document | Skipped | Deferred]:
        with open_export(self.path, Limits.from_settings(self.settings)) as export:
            entries = export.entries()
            names = {e.path for e in entries}
            root = _space_root(names)
            if root is None:
                xml = _shallowest(n for n in names if PurePosixPath(n).name == "entities.xml")
                if xml is not None:
                    from connectors.confluence_xml import read_xml_export

                    yield from export.skipped
                    yield from read_xml_export(self.config, export, xml, self.set_total)
                    return
                unreadable = [s.path for s in export.skipped if s.keep_prefix is not None]
                if unreadable:
                    raise ExportUnavailable(
                        f"export {self.config.path}: {len(unreadable)} folder(s) cannot be read "
                        f"({', '.join(unreadable[:3])}), and no index.html or entities.xml was found outside them"
                    )
                raise ExportUnavailable(
                    f"export {self.config.path} has no index.html or entities.xml: not a Confluence space export"
                )
            yield from (_narrow_kept(s, root) for s in export.skipped)
            yield from _HtmlSpace(self, export, root, entries).items()


def _narrow_kept(skipped: Skipped, root: str) -> Skipped:
    """An unreadable `attachments/<pageId>/` folder keeps just that page's attachments (ids `<pageId>/<file>`)."""
    parts = skipped.path[len(root) :].strip("/").split("/") if skipped.path.startswith(root) else []
    if skipped.keep_prefix is None or len(parts) != 2 or parts[0] != "attachments":
        return skipped
    return Skipped(skipped.path, skipped.reason, keep_prefix=f"{parts[1]}/")


def _shallowest(names: Iterator[str]) -> str | None:
    return min(names, key=lambda n: (n.count("/"), n), default=None)


def _space_root(names: set[str]) -> str | None:
    """The folder holding the space's index.html ("" for the export root); zips usually wrap it in one folder."""
    index = _shallowest(n for n in names if PurePosixPath(n).name == "index.html")
    if index is None:
        return None
    parent = str(PurePosixPath(index).parent)
    return "" if parent == "." else parent + "/"


class _HtmlSpace:
    """One HTML space export being read."""

    def __init__(self, reader: ConfluenceReader, export: Export, root: str, entries: list[Entry]) -> None:
        self.reader = reader
        self.export = export
        self.root = root
        self.base_url = (reader.config.base_url or "").rstrip("/")
        self.pages: list[Entry] = []
        self.attachments: dict[str, list[Entry]] = {}
        for entry in entries:
            if not entry.path.startswith(root):
                continue
            rel = entry.path[len(root) :]
            parts = rel.split("/")
            if len(parts) == 1 and rel.lower().endswith(".html") and rel != "index.html":
                self.pages.append(entry)
            elif len(parts) == 3 and parts[0] == "attachments":
                self.attachments.setdefault(parts[1], []).append(entry)
        reader.set_total(len(self.pages) + sum(len(a) for a in self.attachments.values()))
        # An HTML export carries no restrictions: every page is visible to the source's audience.
        self.access = reader.config.audience_access() or PUBLIC
        self.space_name, self.space_key, self.tree = self._read_index()

    def _read_index(self) -> tuple[str, str, dict[str, list[str]]]:
        """Space name, key, and each page file's ancestors from the page tree of index.html."""
        try:
            soup = parse_html(self.export.read_bytes(self.root + "index.html"))
        except ExtractError:
            return "", "", {}
        details: dict[str, str] = {}
        for tr in soup.select("table.confluenceTable tr"):
            th, td = tr.find("th"), tr.find("td")
            if th and td:
                details[th.get_text(strip=True).rstrip(":").lower()] = " ".join(td.get_text().split())
        name = details.get("name") or " ".join((soup.title.get_text() if soup.title else "").split())
        tree: dict[str, list[str]] = {}
        for link in soup.select("#main-content li > a[href]"):
            ancestors = [
                " ".join(a.get_text().split())
                for li in reversed(link.find_parents("li")[1:])  # [0] is the link's own <li>
                if (a := li.find("a", recursive=False)) is not None
            ]
            tree[str(link["href"])] = ancestors
        return name, details.get("key", ""), tree

    def items(self) -> Iterator[Document | Skipped | Deferred]:
        for entry in sorted(self.pages, key=lambda e: e.path):
            page_id = page_id_of(entry.path)
            try:
                data = self.export.read_bytes(entry.path)
            except ExtractError as exc:
                yield from self._after_page(entry, page_id, exc)
                continue
            work = Deferred(
                entry.path, parse_page, (data, self.space_name), partial(self._after_page, entry, page_id)
            )
            if page_id in self.attachments:
                # Its attachments are read from the export once the page is parsed: that must happen while the
                # export is open, so such a page is parsed here rather than ahead in a worker.
                yield from work.run_here()
            else:
                yield work
        page_ids = {page_id_of(e.path) for e in self.pages}
        for orphan in sorted(set(self.attachments) - page_ids):
            yield from self._attachments(orphan, None, {})

    def _after_page(
        self, entry: Entry, page_id: str, parsed: ParsedPage | ExtractError
    ) -> Iterator[Document | Skipped]:
        """The page's document (or why it is skipped), then its attachments."""
        if isinstance(parsed, ExtractError):
            yield Skipped(entry.path, str(parsed), doc_id=page_id)
            yield from self._attachments(page_id, None, {})
            return
        filename = entry.path[len(self.root) :]
        crumbs = parsed.crumbs or ([self.space_name] if self.space_name else []) + self.tree.get(filename, [])
        title = parsed.title or filename.rsplit(".", 1)[0]
        doc = Document(
            id=page_id,
            source=self.reader.config.name,
            title=title,
            text=parsed.text,
            url=self._page_url(page_id, title, entry.path),
            breadcrumb=crumbs,
            author=parsed.author,
            modified=parsed.modified,
            size=entry.size,
            access=self.access,
        )
        if doc.text.strip():
            yield doc
        else:
            yield Skipped(entry.path, "page has no text")
        yield from self._attachments(page_id, doc, parsed.attachment_titles)

    def _page_url(self, page_id: str, title: str, path: str) -> str:
        if not self.base_url:
            return self.export.uri(path)
        if page_id.isdigit():
            return f"{self.base_url}/pages/viewpage.action?pageId={page_id}"
        return f"{self.base_url}/display/{quote(self.space_key)}/{quote(title.replace(' ', '+'), safe='+')}"

    def _attachments(
        self, page_id: str, page: Document | None, titles: dict[str, str]
    ) -> Iterator[Document | Skipped]:
        for entry in sorted(self.attachments.get(page_id, []), key=lambda e: e.path):
            file_name = entry.path.rsplit("/", 1)[-1]
            doc_id = f"{page_id}/{file_name}"
            title = titles.get(file_name) or file_name
            if not supported(title) and not supported(file_name):
                yield Skipped(
                    entry.path, f"attachment type {PurePosixPath(title).suffix or '(none)'} is not indexed"
                )
                continue
            kind_name = file_name if supported(file_name) else title
            try:
                extracted = extract(kind_name, self.export.read_bytes(entry.path), self.export.limits)
            except ExtractError as exc:
                yield Skipped(entry.path, str(exc), doc_id=doc_id)
                continue
            crumbs = [*page.breadcrumb, page.title] if page else [self.space_name] if self.space_name else []
            if self.base_url and page_id.isdigit():
                url = f"{self.base_url}/pages/viewpageattachments.action?pageId={page_id}"
            else:
                url = self.export.uri(entry.path)
            yield Document(
                id=doc_id,
                source=self.reader.config.name,
                title=title,
                text=extracted.text,
                url=url,
                breadcrumb=crumbs,
                author=extracted.author or (page.author if page else None),
                modified=extracted.modified or (page.modified if page else None),
                size=entry.size,
                access=page.access if page else self.access,  # an attachment is read as its page is
            )


@dataclass(slots=True)
class ParsedPage:
    """What a page's HTML says, as plain data (it crosses from a parser process)."""

    title: str  # "" when the page has none
    text: str  # "" for an emptied page: its chunks go
    crumbs: list[str]
    author: str | None
    modified: datetime | None
    attachment_titles: dict[str, str]  # attachment file name -> its title in the page


def parse_page(data: bytes, space_name: str) -> ParsedPage:
    """One page file of an HTML space export; raises `ExtractError` when it is empty or not a Confluence page."""
    if not data.strip():
        # More likely a copy cut short than an emptied page (that still has Confluence's page frame).
        raise ExtractError("page file is empty (0 bytes); kept any indexed version")
    soup = parse_html(data)
    body = soup.select_one("div#main-content") or soup.select_one(".wiki-content")
    if body is None and soup.select_one(_PAGE_FRAME) is None:
        raise ExtractError("not a Confluence page (no div#main-content)")
    crumbs = [" ".join(li.get_text().split()) for li in soup.select("#breadcrumbs li")]
    author, modified = _page_metadata(soup.select_one("div.page-metadata"))
    return ParsedPage(
        title=_title(soup, space_name),
        text=html_to_markdown(body) if body is not None else "",
        crumbs=[c for c in crumbs if c],
        author=author,
        modified=modified,
        attachment_titles={
            str(a["href"]).rsplit("/", 1)[-1]: " ".join(a.get_text().split())
            for a in soup.select('a[href^="attachments/"]')
        },
    )


def _title(soup: BeautifulSoup, space_name: str) -> str:
    el = soup.select_one("#title-text") or soup.select_one("#title-heading") or soup.find("title")
    title = " ".join(el.get_text().split()) if el else ""
    prefix = f"{space_name} : "
    if space_name and title.startswith(prefix):
        return title[len(prefix) :]
    if not space_name and " : " in title:
        return title.split(" : ", 1)[1]
    return title


def _page_metadata(el: Tag | None) -> tuple[str | None, datetime | None]:
    """Creator and last-modified date from "Created by A, last modified by B on Mar 03, 2025"."""
    if el is None:
        return None, None
    author_el = el.select_one(".author")
    author = " ".join(author_el.get_text().split()) if author_el else None
    text = " ".join(el.get_text(" ").split())
    if author is None and text.startswith("Created by "):
        author = text[len("Created by ") :].split(",")[0].split(" on ")[0].strip() or None
    _, sep, date_text = text.rpartition(" on ")
    return author or None, parse_confluence_date(date_text) if sep else None
