"""Google Drive export (folder or zip): Google Takeout's `Takeout/Drive/...` layout or plain folders.

The folder path is the breadcrumb. A sidecar `<file>.json` (or `<file>-info.json`, `<file>.metadata.json`) holding
Drive API metadata (`id`, `name`/`title`, `webViewLink`/`alternateLink`, `modifiedTime`/`modifiedDate`,
`lastModifyingUser`/`owners`) supplies the document's Drive URL, modified time, author and a stable id, and its
`permissions` list (Drive API: `type` user/group/domain/anyone, `emailAddress`, `role`), when present, who may read
it (docs/permissions.md); without one, the source's `visible_to` decides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from connectors.archive import Entry, Export, Limits, open_export
from connectors.base import Reader
from connectors.errors import ExtractError, Skipped
from connectors.formats import Extracted, decode_text, extract, supported
from connectors.parse_pool import Deferred
from rag_core.permissions import PUBLIC, Access, group, user
from rag_core.types import Document

log = logging.getLogger(__name__)

_SIDECAR_SUFFIXES = (".json", "-info.json", ".metadata.json")


class DriveReader(Reader):
    def items(self) -> Iterator[Document | Skipped | Deferred]:
        with open_export(self.path, Limits.from_settings(self.settings)) as export:
            entries = export.entries()
            yield from export.skipped
            root = _drive_root([e.path for e in entries])
            names = {e.path for e in entries}
            files: list[Entry] = []
            sidecars: dict[str, str] = {}
            for entry in entries:
                if not entry.path.startswith(root):
                    continue  # Takeout's own index pages and other products' folders
                owner = _sidecar_owner(entry.path, names)
                if owner is not None:
                    sidecars[owner] = entry.path
                else:
                    files.append(entry)
            self.set_total(len(files))
            for entry in files:
                yield self._document(export, root, entry, sidecars.get(entry.path))

    def _document(self, export: Export, root: str, entry: Entry, sidecar: str | None) -> Skipped | Deferred:
        path = PurePosixPath(entry.path[len(root) :])
        if not supported(path.name):
            return Skipped(entry.path, f"unsupported file type {path.suffix.lower() or '(none)'}")
        meta = _read_sidecar(export, sidecar) if sidecar else {}
        doc_id = f"drive:{meta['id']}" if isinstance(meta.get("id"), str) and meta["id"] else str(path)
        url = _first_str(meta, "webViewLink", "alternateLink", "url", "link") or export.uri(entry.path)

        def finish(extracted: Extracted | ExtractError) -> list[Document | Skipped]:
            if isinstance(extracted, ExtractError):
                return [Skipped(entry.path, str(extracted), doc_id=doc_id)]
            return [self._from_extracted(extracted, path, entry, meta, doc_id, url)]

        try:
            data = export.read_bytes(entry.path)
        except ExtractError as exc:
            return Skipped(entry.path, str(exc), doc_id=doc_id)
        return Deferred(entry.path, extract, (path.name, data, export.limits), finish)

    def _from_extracted(
        self,
        extracted: Extracted,
        path: PurePosixPath,
        entry: Entry,
        meta: dict[str, Any],
        doc_id: str,
        url: str,
    ) -> Document:
        name = meta.get("name") or meta.get("title")
        title = str(name) if name else path.stem
        if title.lower().endswith(path.suffix.lower()) and path.suffix:
            title = title[: -len(path.suffix)]
        return Document(
            id=doc_id,
            source=self.config.name,
            title=title,
            text=extracted.text,
            url=url,
            breadcrumb=list(path.parent.parts),
            author=_author(meta) or extracted.author,
            modified=_parse_time(_first_str(meta, "modifiedTime", "modifiedDate", "modified"))
            or extracted.modified,
            size=entry.size,
            access=drive_access(meta, self.config.audience_access() or PUBLIC),
        )


def drive_access(meta: dict[str, Any], audience: Access) -> Access:
    """Who may read a file, from its sidecar's Drive API `permissions`; `audience` (the source's) without one.

    Every role (reader, commenter, writer, owner, …) may read. `anyone` and `domain` grants mean everyone who may
    use the source (`audience`): the source's own audience is what a deployment calls "everyone". A list that names
    nobody readable (all unknown types or deleted) fails closed: only the operator sees the file.
    """
    permissions = meta.get("permissions")
    if not isinstance(permissions, list):
        return audience
    principals: set[str] = set()
    for grant in permissions:
        if not isinstance(grant, dict) or grant.get("deleted") is True:
            continue
        kind = grant.get("type")
        if kind in ("anyone", "domain"):
            return audience
        email = grant.get("emailAddress")
        if kind in ("user", "group") and isinstance(email, str) and email.strip():
            principals.add(user(email) if kind == "user" else group(email))
    return Access.only(principals)


def _drive_root(paths: list[str]) -> str:
    """`.../Takeout/Drive/` when the export is a Takeout archive, a lone top-level `Drive/`, else the root."""
    roots = []
    for path in paths:
        parts = path.split("/")
        for i in range(len(parts) - 2):
            if parts[i] == "Takeout" and parts[i + 1] == "Drive":
                roots.append("/".join(parts[: i + 2]) + "/")
                break
    if roots:
        return min(roots, key=lambda r: (r.count("/"), r))
    tops = {p.split("/", 1)[0] for p in paths if "/" in p}
    if tops == {"Drive"} and all("/" in p for p in paths):
        return "Drive/"
    return ""


def _sidecar_owner(path: str, names: set[str]) -> str | None:
    """The file this path describes, when it is a metadata sidecar of a file in the export."""
    for suffix in _SIDECAR_SUFFIXES:
        if path.endswith(suffix):
            owner = path[: -len(suffix)]
            if owner in names and not owner.endswith(".json"):
                return owner
    return None


def _read_sidecar(export: Export, path: str) -> dict[str, Any]:
    try:
        meta = json.loads(decode_text(export.read_bytes(path)))
    except (ExtractError, ValueError) as exc:
        log.warning(
            "unreadable Drive metadata sidecar; using the file alone", extra={"path": path, "error": str(exc)}
        )
        return {}
    return meta if isinstance(meta, dict) else {}


def _first_str(meta: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _author(meta: dict[str, Any]) -> str | None:
    user = meta.get("lastModifyingUser")
    if isinstance(user, dict) and isinstance(user.get("displayName"), str):
        return user["displayName"]
    owners = meta.get("owners")
    if isinstance(owners, list) and owners and isinstance(owners[0], dict):
        name = owners[0].get("displayName")
        if isinstance(name, str):
            return name
    names = meta.get("ownerNames")
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0]
    return _first_str(meta, "lastModifyingUserName", "author")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
