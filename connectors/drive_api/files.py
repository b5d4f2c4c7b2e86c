"""One Drive file as a `Document`: Google Docs exported as HTML, Sheets as XLSX, Slides as text; other files
downloaded (within `RAG_MAX_FILE_BYTES`) and read like an export's; the file's permissions as its `Access`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.archive import Limits
from connectors.errors import ExtractError, Skipped
from connectors.formats import extract, supported
from rag_core.permissions import PUBLIC, Access, group, user
from rag_core.types import Document

FOLDER = "application/vnd.google-apps.folder"
# Google-native type -> (export MIME type, suffix the extractors read it by). Drive exports at most 10 MB.
EXPORTS: dict[str, tuple[str, str]] = {
    "application/vnd.google-apps.document": ("text/html", ".html"),
    "application/vnd.google-apps.spreadsheet": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".xlsx",
    ),
    "application/vnd.google-apps.presentation": ("text/plain", ".txt"),
}
FILE_FIELDS = (
    "id,name,mimeType,size,modifiedTime,md5Checksum,webViewLink,parents,trashed,driveId,"
    "lastModifyingUser(displayName,emailAddress),owners(displayName,emailAddress),"
    "permissions(type,role,emailAddress,domain),capabilities(canShare)"
)
# Drive gives a My Drive file's permissions only to whoever may share it (files.list leaves them out and
# permissions.list answers 403 insufficientFilePermissions): such a file cannot say who may read it.
HIDDEN_SHARING = (
    "the service account cannot see who may read it (Drive shows a file's sharing only to whoever may share "
    "it): share the folder with the service account as Editor, or read as a user who may share it "
    "(domain-wide delegation, `subject`)"
)


def sharing_hidden(meta: dict[str, Any]) -> bool:
    """A My Drive file this account may not share: its permissions are nowhere it may read them. (Shared
    drives leave `permissions` out of files.list for everyone, and permissions.list gives them to members.)"""
    capabilities = meta.get("capabilities") or {}
    return (
        meta.get("permissions") is None and not meta.get("driveId") and capabilities.get("canShare") is False
    )


def content_stamp(meta: dict[str, Any]) -> str:
    """What shows a file's indexed content is unchanged, from its metadata alone: `modifiedTime` (Drive moves it
    on every content edit and rename, not on sharing changes), `md5Checksum` (binary files), name, type, size.
    Equal stamps: only the file's permissions (or parents) changed, and it need not be exported again."""
    parts = [meta.get(k) for k in ("modifiedTime", "md5Checksum", "name", "mimeType", "size")]
    if not parts[0]:
        return ""  # no modification time: nothing vouches for the content, so it is always read again
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()


def access_of(permissions: list[dict[str, Any]]) -> Access:
    """Anyone / domain links: everyone who may use the source; else the users and groups named."""
    principals: set[str] = set()
    for permission in permissions:
        kind = permission.get("type")
        if kind in ("anyone", "domain"):
            return PUBLIC
        email = permission.get("emailAddress")
        if email and kind == "user":
            principals.add(user(email))
        elif email and kind == "group":
            principals.add(group(email))
    return Access.only(principals)


def to_document(
    meta: dict[str, Any],
    source: str,
    limits: Limits,
    download: Callable[[str], bytes],
    export: Callable[[str, str], bytes],
    permissions: Callable[[str], list[dict[str, Any]]],
    breadcrumb: list[str],
) -> Document | Skipped:
    """The file's document, or the reason it is skipped (its indexed version is kept then)."""
    file_id, name, mime = (
        str(meta["id"]),
        str(meta.get("name") or meta["id"]),
        str(meta.get("mimeType") or ""),
    )
    try:
        if mime in EXPORTS:
            target, suffix = EXPORTS[mime]
            data = export(file_id, target)
            extracted = extract(f"{name}{suffix}", data, limits)
        elif mime.startswith("application/vnd.google-apps."):
            return Skipped(name, f"Google file type {mime.rsplit('.', 1)[-1]} has no text export")
        else:
            size = int(meta.get("size") or 0)
            if not supported(name):
                return Skipped(
                    name, f"unsupported file type {name.rsplit('.', 1)[-1] if '.' in name else '(none)'}"
                )
            if size > limits.max_file_bytes:
                return Skipped(
                    name,
                    f"file is {size:,} bytes, over the max_file_bytes limit of {limits.max_file_bytes:,}",
                )
            data = download(file_id)
            extracted = extract(name, data, limits)
    except ExtractError as exc:
        return Skipped(name, str(exc), doc_id=file_id)
    perms = meta.get("permissions")
    if perms is None:  # shared-drive files: files.list leaves permissions out, permissions.list has them
        perms = permissions(file_id)
    person = meta.get("lastModifyingUser") or (meta.get("owners") or [{}])[0]
    return Document(
        id=file_id,
        source=source,
        title=name,
        text=extracted.text,
        url=str(meta.get("webViewLink") or ""),
        breadcrumb=breadcrumb,
        author=person.get("displayName"),
        modified=_time(meta.get("modifiedTime")),
        size=int(meta.get("size") or len(data)),
        access=access_of(perms),
    )


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
