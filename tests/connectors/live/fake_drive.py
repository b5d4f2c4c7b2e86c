"""A fake Google Drive API v3 (+ the OAuth token endpoint a service account signs in at), from the documented
shapes: files.list, changes.getStartPageToken, changes.list, files.get alt=media, files.export, permissions.list."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.connectors.live.fake_http import FakeApi, Reply, Request

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"


@dataclass
class File:
    id: str
    name: str
    mime: str
    content: bytes = b""
    parents: list[str] = field(default_factory=lambda: ["root"])
    permissions: list[dict[str, str]] = field(default_factory=lambda: [{"type": "domain", "domain": "x.com"}])
    trashed: bool = False
    modified: str = "2024-01-01T00:00:00.000Z"
    drive_id: str | None = None
    can_share: bool = True  # False: shared with the service account as a viewer (My Drive)


def service_account_json(token_uri: str) -> str:
    """A service-account key as Google issues it, with a fresh RSA key and the fake's token endpoint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "ragbot-test",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "ragbot@ragbot-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


class FakeDrive(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, File] = {}
        self.changes: list[str] = []  # file ids, in change order (removed files stay listed)
        self.grant_ok = True
        self.tokens_issued = 0
        self.hide_permissions = False  # shared drives: files.list leaves permissions out
        self.forbid_permissions: set[str] = set()  # file ids whose permissions.list answers 403 all the same
        self.claims: dict[str, Any] = {}  # of the last signed JWT the service account sent
        self.edits = 0

    # -- test helpers ----------------------------------------------------------------------------------------

    def put(self, file: File) -> File:
        self.files[file.id] = file
        self.changes.append(file.id)
        return file

    def touch(self, file_id: str, **changes: Any) -> None:
        """Change a file as Drive would: a content edit or a rename moves `modifiedTime`, sharing does not."""
        file = self.files[file_id]
        for k, v in changes.items():
            setattr(file, k, v)
        if ("content" in changes or "name" in changes) and "modified" not in changes:
            self.edits += 1
            file.modified = f"2024-02-01T00:00:{self.edits % 60:02d}.{self.edits:03d}Z"
        self.changes.append(file_id)

    def remove(self, file_id: str) -> None:
        del self.files[file_id]
        self.changes.append(file_id)

    # -- routes ----------------------------------------------------------------------------------------------

    def route(self, req: Request) -> Reply:
        if req.path == "/token":
            assertion = (req.arg("assertion") or "..").split(".")[1]
            self.claims = json.loads(base64.urlsafe_b64decode(assertion + "=" * (-len(assertion) % 4)))
            if not self.grant_ok:
                return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            self.tokens_issued += 1
            return Reply(
                body={
                    "access_token": f"ya29.fake-{self.tokens_issued}",
                    "expires_in": 3600,
                    "token_type": "Bearer",
                }
            )
        if not req.headers.get("authorization", "").startswith("Bearer ya29.fake-"):
            return _error(401, "authError", "Invalid Credentials")
        path = req.path.removeprefix("/drive/v3")
        if path == "/changes/startPageToken":
            return Reply(body={"startPageToken": str(len(self.changes) + 1)})
        if path == "/changes":
            return self._changes(req)
        if path == "/files":
            return self._list(req)
        if m := re.fullmatch(r"/files/([^/]+)/export", path):
            file = self.files.get(m.group(1))
            return (
                Reply(body=file.content, content_type=req.arg("mimeType") or "")
                if file
                else _error(404, "notFound", "File not found")
            )
        if m := re.fullmatch(r"/files/([^/]+)/permissions", path):
            file = self.files.get(m.group(1))
            if file is None:
                return _error(404, "notFound", "File not found")
            if (not file.can_share and not file.drive_id) or file.id in self.forbid_permissions:
                return _error(
                    403,
                    "insufficientFilePermissions",
                    "The user does not have sufficient permissions for this file.",
                )
            return Reply(body={"permissions": file.permissions})
        if m := re.fullmatch(r"/files/([^/]+)", path):
            file = self.files.get(m.group(1))
            if file is None:
                return _error(404, "notFound", "File not found")
            if req.arg("alt") == "media":
                return Reply(body=file.content, content_type="application/octet-stream")
            return Reply(body=self._meta(file))
        return _error(404, "notFound", f"no route {req.path}")

    def _meta(self, file: File) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "kind": "drive#file",
            "id": file.id,
            "name": file.name,
            "mimeType": file.mime,
            "parents": file.parents,
            "trashed": file.trashed,
            "modifiedTime": file.modified,
            "webViewLink": f"https://docs.google.com/d/{file.id}/view",
            "lastModifyingUser": {"displayName": "Grace Hopper", "emailAddress": "grace@x.com"},
        }
        if not file.mime.startswith("application/vnd.google-apps."):
            meta["size"] = str(len(file.content))
            meta["md5Checksum"] = hashlib.md5(file.content).hexdigest()  # binary files only, as Drive
        if file.drive_id:
            meta["driveId"] = file.drive_id
        if not self.hide_permissions and file.can_share and not file.drive_id:
            meta["permissions"] = (
                file.permissions
            )  # "only available if the requesting user can share the file"
        meta["capabilities"] = {"canShare": file.can_share}
        return meta

    def _list(self, req: Request) -> Reply:
        q = req.arg("q") or ""
        parent = re.search(r"'([^']+)' in parents", q)
        found = [
            f
            for f in self.files.values()
            if not (f.trashed and "trashed = false" in q)
            and (parent is None or parent.group(1) in f.parents)
            and not (f"mimeType != '{FOLDER}'" in q and f.mime == FOLDER)
            and (req.arg("driveId") is None or f.drive_id == req.arg("driveId"))
        ]
        found.sort(key=lambda f: f.id)
        offset, size = int(req.arg("pageToken") or 0), int(req.arg("pageSize") or 100)
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "files": [self._meta(f) for f in found[offset : offset + size]],
        }
        if offset + size < len(found):
            body["nextPageToken"] = str(offset + size)
        return Reply(body=body)

    def _changes(self, req: Request) -> Reply:
        start, size = int(req.arg("pageToken") or 1), int(req.arg("pageSize") or 100)
        window = self.changes[start - 1 : start - 1 + size]
        changes = []
        for file_id in window:
            file = self.files.get(file_id)
            change: dict[str, Any] = {
                "kind": "drive#change",
                "changeType": "file",
                "fileId": file_id,
                "removed": file is None,
                "time": "2024-01-02T00:00:00.000Z",
            }
            if file is not None:
                change["file"] = self._meta(file)
            changes.append(change)
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if start - 1 + size < len(self.changes):
            body["nextPageToken"] = str(start + size)
        else:
            body["newStartPageToken"] = str(len(self.changes) + 1)
        return Reply(body=body)


def _error(status: int, reason: str, message: str) -> Reply:
    return Reply(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        },
    )


def rate_limited() -> dict[str, Any]:
    return {
        "error": {
            "code": 403,
            "message": "User Rate Limit Exceeded",
            "errors": [
                {
                    "domain": "usageLimits",
                    "reason": "userRateLimitExceeded",
                    "message": "User Rate Limit Exceeded",
                }
            ],
        }
    }
