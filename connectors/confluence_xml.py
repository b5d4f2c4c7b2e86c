"""Confluence space export, XML format: `entities.xml` (Hibernate objects) read with lxml.

Only the latest version of each current page is read: historical versions (they carry `originalVersion`) and
drafts or deleted pages are left out. Page bodies are in Confluence's storage format (XHTML with `ac:`/`ri:`
elements); the common macros are turned into the same HTML the HTML export writes, then into Markdown-like text.

Who may read each page (docs/permissions.md): a page's View restriction (`ContentPermissionSet` of type View, its
`ContentPermission` rows naming a user or a group) and those of all its ancestors, intersected as Confluence applies
them; pages without any take the source's audience (`visible_to`, else the space's VIEWSPACE permissions, else
everyone who may use the source).
"""

from __future__ import annotations

import html.entities
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from connectors.errors import ExportUnavailable, ExtractError, Skipped
from connectors.html_markdown import html_to_markdown, parse_html
from rag_core.permissions import PUBLIC, Access, group, user
from rag_core.types import Document

if TYPE_CHECKING:
    from connectors.archive import Export
    from rag_core.settings import SourceConfig

AC = "http://atlassian.com/content"
RI = "http://atlassian.com/resource/identifier"
_MACRO_KINDS = {"info": "information", "note": "note", "warning": "warning", "tip": "tip"}
# Storage format uses HTML's named entities, which XML does not know: declare them for the body parser.
_ENTITIES = "".join(f'<!ENTITY {name} "&#{code};">' for name, code in html.entities.name2codepoint.items())
_BODY_PREFIX = (
    f"<!DOCTYPE root [{_ENTITIES}]>"
    f'<root xmlns:ac="{AC}" xmlns:ri="{RI}" xmlns:at="http://atlassian.com/template">'
)


@dataclass
class _Page:
    id: str
    title: str = ""
    parent: str | None = None
    space: str | None = None
    creator: str | None = None
    modified: datetime | None = None
    historical: bool = False
    status: str = "current"
    bodies: list[tuple[int, str]] = field(default_factory=list)  # (body id, storage-format XHTML)


@dataclass
class _Entities:
    """What the export says besides page bodies: spaces, users and permissions, as raw references."""

    pages: dict[str, _Page] = field(default_factory=dict)
    spaces: dict[str, str] = field(default_factory=dict)  # space id -> name
    users: dict[str, str] = field(default_factory=dict)  # user key -> display name (for authors)
    emails: dict[str, str] = field(default_factory=dict)  # user key -> email, where the export has one
    keys_by_name: dict[str, str] = field(default_factory=dict)  # lower-cased user name -> user key
    view_sets: dict[str, str] = field(default_factory=dict)  # View ContentPermissionSet id -> page id
    set_rows: dict[str, list[str]] = field(default_factory=dict)  # permission set id -> principals
    # space id -> VIEWSPACE principals (None: anonymous access, anyone)
    space_viewers: dict[str, set[str] | None] = field(default_factory=dict)

    def principal_of(self, key: str | None, name: str | None, group_name: str | None) -> str | None:
        """A permission row's principal: its group, else its user (email where known, else the user name)."""
        if group_name and group_name.strip():
            return group(group_name)
        if not key and name and name.strip():
            key = self.keys_by_name.get(name.strip().lower())
            if key is None:
                return user(name)
        if not key:
            return None
        email = self.emails.get(key)
        # Without an email the principal is the user name: it matches no asker's email, so it fails closed.
        return user(email or self.users.get(key) or key)

    def restrictions(self) -> dict[str, Access]:
        """Each page's own View restriction (a set without any row restricts nothing, as in Confluence)."""
        by_page: dict[str, set[str]] = {}
        for set_id, page_id in self.view_sets.items():
            rows = self.set_rows.get(set_id)
            if rows is not None:  # rows naming nobody readable (damaged) leave an empty set: fail closed
                by_page.setdefault(page_id, set()).update(rows)
        return {page_id: Access.only(principals) for page_id, principals in by_page.items()}

    def space_access(self, space_id: str | None) -> Access | None:
        """The space's VIEWSPACE principals; None when the export has no space permissions for it."""
        if space_id not in self.space_viewers:
            return None
        viewers = self.space_viewers[space_id or ""]
        return PUBLIC if viewers is None else Access.only(viewers)


def read_xml_export(
    config: SourceConfig, export: Export, xml_path: str, on_total: Callable[[int], None]
) -> Iterator[Document | Skipped]:
    """The current pages of an XML space export; `on_total` hears how many pages there are before the first."""
    try:
        # The export's own manifest holds every page: only the whole-export cap applies to it, not max_file_bytes.
        data = export.read_bytes(xml_path, max_bytes=export.limits.max_export_bytes)
    except ExtractError as exc:
        raise ExportUnavailable(f"Confluence XML export {xml_path} cannot be read: {exc}") from exc
    entities = _parse_entities(data, xml_path)
    pages, spaces, users = entities.pages, entities.spaces, entities.users
    restrictions = entities.restrictions()
    current = sorted(
        (p for p in pages.values() if not p.historical and p.status == "current"), key=lambda p: p.id
    )
    on_total(len(current))
    unpublished = sum(1 for p in pages.values() if not p.historical and p.status != "current")
    if not current and unpublished:
        yield Skipped(xml_path, f"no published page: the export holds {unpublished} draft or deleted page(s)")
    base_url = (config.base_url or "").rstrip("/")
    file_uri = export.uri(xml_path)
    for page in current:
        crumbs: list[str] = []
        parent, hops = page.parent, 0
        while parent and parent in pages and hops < 100:  # guard against a parent loop in a damaged export
            crumbs.insert(0, pages[parent].title)
            parent, hops = pages[parent].parent, hops + 1
        space = spaces.get(page.space or "")
        if space:
            crumbs.insert(0, space)
        if not page.bodies:
            yield Skipped(f"{xml_path}#{page.id}", "page has no body", doc_id=None)
            continue
        try:
            text = storage_to_markdown(max(page.bodies)[1])
        except ExtractError as exc:
            yield Skipped(f"{xml_path}#{page.id}", str(exc), doc_id=page.id)
            continue
        if not text.strip():
            yield Skipped(f"{xml_path}#{page.id}", "page has no text")
            continue
        if base_url and page.id.isdigit():
            url = f"{base_url}/pages/viewpage.action?pageId={page.id}"
        else:
            url = f"{file_uri}{'&' if '#' in file_uri else '#'}pageId={page.id}"
        yield Document(
            id=page.id,
            source=config.name,
            title=page.title,
            text=text,
            url=url,
            breadcrumb=crumbs,
            author=users.get(page.creator or "", page.creator),
            modified=page.modified,
            size=len(max(page.bodies)[1].encode()),
            access=_page_access(page, pages, restrictions)
            or config.audience_access()
            or entities.space_access(page.space)
            or PUBLIC,
        )


def _page_access(page: _Page, pages: dict[str, _Page], restrictions: dict[str, Access]) -> Access | None:
    """The intersection of the View restrictions on the page and its ancestors; None when none has any."""
    access: Access | None = None
    page_id: str | None = page.id
    hops = 0
    while page_id and hops < 100:  # guard against a parent loop in a damaged export
        own = restrictions.get(page_id)
        if own is not None:
            access = own if access is None else access.narrowed_by(own)
        page_id = pages[page_id].parent if page_id in pages else None
        hops += 1
    return access


def _parse_entities(data: bytes, xml_path: str) -> _Entities:
    """Pages by id, space names by id, users by key, View restrictions and space view permissions."""
    found = _Entities()
    pages, spaces, users = found.pages, found.spaces, found.users
    rows: list[tuple[str, str | None, str | None, str | None]] = []  # (set id, user key, user name, group)
    space_rows: list[tuple[str, str | None, str | None, str | None]] = []  # (space id, user key, name, group)
    bodies: list[tuple[str, int, str]] = []  # (page id, body id, storage XHTML)
    parser_args = {"events": ("end",), "tag": "object", "resolve_entities": False, "no_network": True}
    try:
        for _, obj in etree.iterparse(io.BytesIO(data), **parser_args):
            kind = obj.get("class")
            obj_id, props = _object(obj)
            if kind == "Page" and obj_id:
                page = pages.setdefault(obj_id, _Page(obj_id))
                page.title = props.get("title", "")
                page.parent = props.get("parent")
                page.space = props.get("space")
                page.creator = props.get("creator") or props.get("creatorName")
                page.modified = _date(props.get("lastModificationDate"))
                page.historical = "originalVersion" in props
                page.status = props.get("contentStatus", "current") or "current"
            elif kind == "BodyContent" and props.get("content") and props.get("body") is not None:
                body_id = int(obj_id) if obj_id and obj_id.isdigit() else 0
                bodies.append((props["content"], body_id, props["body"]))
            elif kind == "Space" and obj_id:
                spaces[obj_id] = props.get("name", "")
            elif kind in ("ConfluenceUserImpl", "User") and obj_id:
                users[obj_id] = props.get("name") or props.get("lowerName") or obj_id
                if (props.get("email") or "").strip():
                    found.emails[obj_id] = props["email"].strip()
                for name in (props.get("name"), props.get("lowerName")):
                    if name and name.strip():
                        found.keys_by_name[name.strip().lower()] = obj_id
            elif kind == "ContentPermissionSet" and obj_id and props.get("owningContent"):
                kind_of_set = (props.get("type") or "").strip().lower()
                if kind_of_set == "view":  # Edit restrictions do not hide a page
                    found.view_sets[obj_id] = props["owningContent"]
            elif kind == "ContentPermission" and props.get("owningSet"):
                rows.append(
                    (
                        props["owningSet"],
                        props.get("userSubject"),
                        props.get("userName"),
                        props.get("groupName"),
                    )
                )
            elif kind == "SpacePermission" and (props.get("type") or "").strip().upper() == "VIEWSPACE":
                space_rows.append(
                    (
                        props.get("space") or "",
                        props.get("userSubject"),
                        props.get("userName"),
                        props.get("group"),
                    )
                )
            obj.clear()
    except etree.XMLSyntaxError as exc:
        raise ExportUnavailable(f"Confluence XML export {xml_path} is not valid XML ({exc})") from exc
    for page_id, body_id, body in bodies:
        if page_id in pages:
            pages[page_id].bodies.append((body_id, body))
    for set_id, key, name, group_name in rows:
        who = found.principal_of(key, name, group_name)
        principals = found.set_rows.setdefault(set_id, [])
        if who is not None:
            principals.append(who)
    for space_id, key, name, group_name in space_rows:
        who = found.principal_of(key, name, group_name)
        if who is None:  # a row naming neither a user nor a group: anonymous access, anyone may view
            found.space_viewers[space_id] = None
        elif found.space_viewers.get(space_id, set()) is not None:  # anonymous access stays anyone
            found.space_viewers.setdefault(space_id, set()).add(who)  # type: ignore[union-attr]
    return found


def _object(obj: etree._Element) -> tuple[str | None, dict[str, str]]:
    """An `<object>`'s id and its simple properties; a reference property maps to the referenced id."""
    obj_id = None
    props: dict[str, str] = {}
    for child in obj:
        if child.tag == "id":
            obj_id = (child.text or "").strip()
        elif child.tag == "property":
            ref = child.find("id")
            props[child.get("name", "")] = (ref.text or "").strip() if ref is not None else (child.text or "")
    return obj_id, props


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


# --- storage format -----------------------------------------------------------------------------------------------


def storage_to_markdown(body: str) -> str:
    """Confluence storage-format XHTML as Markdown-like text."""
    parser = etree.XMLParser(resolve_entities=True, no_network=True, load_dtd=False, recover=False)
    try:
        root = etree.fromstring(f"{_BODY_PREFIX}{body}</root>".encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise ExtractError(f"page body is not valid storage format ({exc})") from exc
    _to_html(root)
    markup = "".join(
        etree.tostring(child, method="html", encoding="unicode", with_tail=True) for child in root
    )
    soup = parse_html(f"<html><body>{root.text or ''}{markup}</body></html>")
    return html_to_markdown(soup.body or soup)


def _ac(name: str) -> str:
    return f"{{{AC}}}{name}"


def _to_html(root: etree._Element) -> None:
    """Rewrite `ac:`/`ri:` elements, innermost first, into the HTML the HTML export writes for them."""
    for el in reversed(list(root.iter(etree.Element))):
        tag = el.tag if isinstance(el.tag, str) else ""
        parent = el.getparent()
        if parent is not None and parent.tag in _OWNERS and (tag in _OWNED or tag.startswith(f"{{{RI}}}")):
            continue  # parameters, bodies and link targets are read by the macro, task or link that holds them
        if tag in (_ac("structured-macro"), _ac("macro")):
            _macro(el)
        elif tag == _ac("task-list"):
            _retag(el, "ul", {"class": "inline-task-list"})
        elif tag == _ac("task"):
            done = (el.findtext(_ac("task-status")) or "").strip() == "complete"
            body = el.find(_ac("task-body"))
            li = etree.Element("li", {"class": "checked"} if done else {})
            _move_content(body, li)
            _replace(el, li)
        elif tag == _ac("link"):
            label = el.findtext(_ac("plain-text-link-body")) or _text(el.find(_ac("link-body")))
            if not label:
                target = next(
                    (c for c in el if isinstance(c.tag, str) and c.tag.startswith(f"{{{RI}}}")), None
                )
                label = (
                    (target.get(f"{{{RI}}}content-title") or target.get(f"{{{RI}}}filename") or "")
                    if target is not None
                    else ""
                )
            span = etree.Element("span")
            span.text = label
            _replace(el, span)
        elif tag in (
            _ac("image"),
            _ac("emoticon"),
            _ac("parameter"),
            _ac("placeholder"),
            _ac("task-id"),
            _ac("task-status"),
        ):
            _drop(el)
        elif tag.startswith((f"{{{AC}}}", f"{{{RI}}}", "{http://atlassian.com/template}")):
            _retag(el, "div")


_OWNERS = {_ac("structured-macro"), _ac("macro"), _ac("task"), _ac("link")}
_OWNED = {
    _ac(n)
    for n in ("parameter", "rich-text-body", "plain-text-body", "task-id", "task-status", "task-body")
    + ("plain-text-link-body", "link-body")
}


def _macro(el: etree._Element) -> None:
    name = el.get(_ac("name"), "")
    params = {p.get(_ac("name"), ""): (p.text or "").strip() for p in el.findall(_ac("parameter"))}
    body = el.find(_ac("rich-text-body"))
    if name in ("code", "noformat"):
        pre = etree.Element("pre", {"data-syntaxhighlighter-params": f"brush: {params.get('language', '')}"})
        pre.text = el.findtext(_ac("plain-text-body")) or ""
        _replace(el, pre)
        return
    box = etree.Element("div")
    if name in _MACRO_KINDS:
        box.set("class", f"confluence-information-macro confluence-information-macro-{_MACRO_KINDS[name]}")
        if params.get("title"):
            etree.SubElement(box, "p", {"class": "title"}).text = params["title"]
        inner = etree.SubElement(box, "div", {"class": "confluence-information-macro-body"})
    elif name == "panel":
        box.set("class", "panel")
        if params.get("title"):
            etree.SubElement(box, "div", {"class": "panelHeader"}).text = params["title"]
        inner = etree.SubElement(box, "div", {"class": "panelContent"})
    elif name == "expand":
        box.set("class", "expand-container")
        control = etree.SubElement(box, "div", {"class": "expand-control"})
        etree.SubElement(control, "span", {"class": "expand-control-text"}).text = params.get("title", "")
        inner = etree.SubElement(box, "div", {"class": "expand-content"})
    else:
        inner = box  # other macros (toc, jira, excerpt, …): keep their rich text, if any
    if body is not None:
        _move_content(body, inner)
    _replace(el, box)


def _text(el: etree._Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def _move_content(source: etree._Element | None, target: etree._Element) -> None:
    if source is None:
        return
    target.text = (target.text or "") + (source.text or "")
    for child in list(source):
        target.append(child)


def _replace(old: etree._Element, new: etree._Element) -> None:
    new.tail = old.tail
    old.getparent().replace(old, new)


def _retag(el: etree._Element, tag: str, attrs: dict[str, str] | None = None) -> None:
    el.tag = tag
    el.attrib.clear()
    el.attrib.update(attrs or {})


def _drop(el: etree._Element) -> None:
    """Remove an element, keeping the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)
