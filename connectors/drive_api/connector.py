"""Google Drive API v3 with a service account (google-api-python-client + google-auth), polled by changes.list.

The first sync takes a start page token (`changes.getStartPageToken`), then lists the files (`files.list`, the
whole drive or the configured folders walked down); every later sync reads `changes.list` from the stored token:
edits, moves out of the folders, trashing, deletions and permission changes, nothing else. The token moves with
each committed batch, and a load killed half-way resumes from its `files.list` page token.

The checkpoint keeps each indexed file's content stamp (`content_stamp`: modification time, checksum, name, a
16-character hash, ~40 bytes a file): a change whose stamp is the stored one changed the sharing only, and
becomes an access change (the file's new permissions, from the change itself; no export, no embedding).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httplib2
from google.auth.exceptions import GoogleAuthError, TransportError
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from connectors.archive import Limits
from connectors.drive_api.files import (
    FILE_FIELDS,
    FOLDER,
    HIDDEN_SHARING,
    access_of,
    content_stamp,
    sharing_hidden,
    to_document,
)
from connectors.errors import Skipped, SourceUnavailable
from connectors.live import AccessChange, Batch, Checkpoint, Listed, LiveConnector
from connectors.live_http import ApiError, credential_name, read_secret
from rag_core.logs import register_secret
from rag_core.permissions import Access
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/drive.readonly"
PAGE_SIZE = 100  # files per files.list page with full metadata
LIST_SIZE = 1000  # ids per page of the slim listing (Drive's maximum)


class SharingHidden(SourceUnavailable):
    """Drive refused a file's permissions (403 insufficientFilePermissions): that file is skipped where the
    sync reads permissions; anywhere else it fails the sync like any refusal."""


_SIZE_LIMITS = {"exportSizeLimitExceeded", "cannotExportFile"}
_RATE_LIMITS = {"rateLimitExceeded", "userRateLimitExceeded"}


class _CountingHttp(httplib2.Http):
    """httplib2 with a request counter (token requests included): the reports' `api_calls`."""

    calls = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().request(*args, **kwargs)


class DriveApiConnector(LiveConnector):
    """Files of a drive (My Drive as the service account or its delegated user sees it, or a shared drive)."""

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        try:
            info = json.loads(read_secret(config))
            register_secret(str(info.get("private_key") or ""))  # redacted even when quoted alone
            creds = service_account.Credentials.from_service_account_info(
                info, scopes=[SCOPE], subject=config.subject
            )
        except (ValueError, KeyError, TypeError):
            raise SourceUnavailable(
                f"{config.name}: {credential_name(config)} does not hold a service-account JSON key"
            ) from None
        self._http = _CountingHttp(timeout=settings.live_timeout_s)
        options = {"api_endpoint": f"{config.url.rstrip('/')}/drive/v3/"} if config.url else None
        self.service = discovery.build(
            "drive",
            "v3",
            http=AuthorizedHttp(creds, http=self._http),
            static_discovery=True,
            client_options=options,
            cache_discovery=False,
        )
        self.limits = Limits.from_settings(settings)
        self._drive_args: dict[str, Any] = (
            {"corpora": "drive", "driveId": config.drive_id, "includeItemsFromAllDrives": True}
            if config.drive_id
            else {"corpora": "user"}
        )

    @property
    def calls(self) -> int:
        return self._http.calls

    # -- the interface ---------------------------------------------------------------------------------------

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[Batch]:
        state = dict(checkpoint or {})
        if "page_token" not in state:
            yield from self._load(state)
            return
        token: str | None = state["page_token"]
        folders = set(state.get("folders") or [])
        stamps: dict[str, str] = dict(state.get("stamps") or {})
        # folders added to the source since the load: walked whole, as at a load (a cut-short walk is redone:
        # these batches move no checkpoint, and the folders are recorded only with the changes below)
        added = [f for f in self.config.folders if f not in folders]
        if added:
            batch = Batch()
            for meta in self._files(f"files({FILE_FIELDS})", PAGE_SIZE, added):
                if meta.get("mimeType") == FOLDER:
                    folders.add(str(meta["id"]))
                else:
                    self._add(batch, meta, stamps)
                if len(batch.documents) >= PAGE_SIZE:
                    yield batch
                    batch = Batch()
            folders.update(added)
            yield batch
        while token:
            page = self._execute(
                self.service.changes().list(
                    pageToken=token,
                    pageSize=PAGE_SIZE,
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=bool(self.config.drive_id),  # as the load's corpora
                    includeRemoved=True,
                    fields=f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))",
                    **({"driveId": self.config.drive_id} if self.config.drive_id else {}),
                )
            )
            batch = Batch()
            for change in page.get("changes") or []:
                meta = change.get("file") or {}
                if change.get("removed") or meta.get("trashed") or not self._in_scope(meta, folders):
                    batch.deleted.append(str(change["fileId"]))
                    stamps.pop(str(change["fileId"]), None)
                elif meta.get("mimeType") == FOLDER:
                    folders.add(str(meta["id"]))
                elif (stamp := content_stamp(meta)) and stamps.get(str(meta["id"])) == stamp:
                    # sharing (or a move within scope) changed, the content did not: new readers, no export
                    try:
                        batch.access.append(AccessChange(str(meta["id"]), self._access(meta), exact=True))
                    except SharingHidden:
                        self._hidden(batch, meta, stamps)
                else:
                    self._add(batch, meta, stamps)
            new_start = page.get("newStartPageToken")
            token = page.get("nextPageToken")
            batch.checkpoint = {
                "page_token": token or new_start,
                "folders": sorted(folders),
                "stamps": dict(stamps),
            }
            yield batch
            if new_start:
                break

    def list_ids(self) -> Iterator[Listed]:
        for meta in self._files("files(id,mimeType)", LIST_SIZE):
            if meta.get("mimeType") != FOLDER:
                yield Listed(str(meta["id"]))

    def close(self) -> None:
        self._http.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _load(self, state: dict[str, Any]) -> Iterator[Batch]:
        """Everything, by files.list; the start token is taken first so that no change during the load is lost."""
        start = state.get("start_token") or self._execute(
            self.service.changes().getStartPageToken(
                supportsAllDrives=True, **({"driveId": self.config.drive_id} if self.config.drive_id else {})
            )
        ).get("startPageToken")
        folders: set[str] = set(state.get("folders") or self.config.folders)
        # A resumed load goes on with the folders it had left ([] once every folder was listed).
        pending: list[str | None] = (
            list(state["pending"]) if "pending" in state else [*self.config.folders] or [None]
        )
        page_token = state.get("list_page")
        # content stamps of the files loaded, stored once the load is done (a resumed load knows only those it
        # read itself: a file without a stamp is exported again at its next change, never given stale readers)
        stamps: dict[str, str] = {}
        while pending:
            parent = pending[0]
            while True:
                page = self._list_page(f"nextPageToken,files({FILE_FIELDS})", PAGE_SIZE, parent, page_token)
                batch = Batch()
                for meta in page.get("files") or []:
                    if meta.get("mimeType") == FOLDER:
                        folders.add(str(meta["id"]))
                        pending.append(str(meta["id"]))
                    else:
                        self._add(batch, meta, stamps)
                page_token = page.get("nextPageToken")
                if not page_token:
                    pending.pop(0)
                batch.checkpoint = {
                    "start_token": start,
                    "list_page": page_token,
                    "pending": pending,
                    "folders": sorted(folders),
                }
                yield batch
                if not page_token:
                    break
        yield Batch(checkpoint={"page_token": start, "folders": sorted(folders), "stamps": stamps})

    def _files(self, fields: str, size: int, roots: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every file (and folder) under `roots` (the configured folders by default), walked down, or of the
        whole drive when no folder is configured."""
        roots = list(self.config.folders) if roots is None else roots
        seen: set[str] = set(roots)
        pending: list[str | None] = list(roots) or [None]
        while pending:
            parent = pending.pop(0)
            token: str | None = None
            while True:
                page = self._list_page(f"nextPageToken,{fields}", size, parent, token)
                for meta in page.get("files") or []:
                    if meta.get("mimeType") == FOLDER and roots and meta["id"] not in seen:
                        seen.add(meta["id"])
                        pending.append(str(meta["id"]))
                    yield meta
                token = page.get("nextPageToken")
                if not token:
                    break

    def _list_page(self, fields: str, size: int, parent: str | None, token: str | None) -> dict[str, Any]:
        query = "trashed = false"
        if parent:
            query = f"'{parent}' in parents and {query}"
        elif not self.config.folders:
            query += f" and mimeType != '{FOLDER}'"
        return self._execute(
            self.service.files().list(
                q=query,
                pageSize=size,
                pageToken=token,
                fields=fields,
                supportsAllDrives=True,
                **self._drive_args,
            )
        )

    def _in_scope(self, meta: dict[str, Any], folders: set[str]) -> bool:
        if not self.config.folders:
            return not self.config.drive_id or meta.get("driveId") in (None, self.config.drive_id)
        return any(parent in folders for parent in meta.get("parents") or [])

    def _add(self, batch: Batch, meta: dict[str, Any], stamps: dict[str, str]) -> None:
        """The file read whole into `batch`; its content stamp kept when it was indexed (else dropped). One whose
        sharing this account cannot read is skipped, and leaves the index if it was in it: nobody can vouch for
        its readers any more."""
        if sharing_hidden(meta):  # known from the listing: no request made to fail
            self._hidden(batch, meta, stamps)
            return
        try:
            document = self._document(meta)
        except SharingHidden:  # the listing did not say (a shared drive, or a right lost since)
            self._hidden(batch, meta, stamps)
            return
        batch.documents.append(document)
        stamp = content_stamp(meta)
        if isinstance(document, Document) and stamp:
            stamps[document.id] = stamp
        else:
            stamps.pop(str(meta.get("id")), None)

    @staticmethod
    def _hidden(batch: Batch, meta: dict[str, Any], stamps: dict[str, str]) -> None:
        """A file whose sharing this account cannot read: skipped with why, and out of the index."""
        batch.documents.append(Skipped(str(meta.get("name") or meta["id"]), HIDDEN_SHARING))
        batch.deleted.append(str(meta["id"]))
        stamps.pop(str(meta["id"]), None)

    def _access(self, meta: dict[str, Any]) -> Access:
        if sharing_hidden(meta):  # known from the listing: no request made to fail
            raise SharingHidden(f"{self.config.name}: {HIDDEN_SHARING}")
        perms = meta.get("permissions")
        return access_of(perms if perms is not None else self._permissions(str(meta["id"])))

    def _document(self, meta: dict[str, Any]) -> Document | Skipped:
        name = str(meta.get("name") or meta.get("id"))
        try:
            return to_document(
                meta,
                self.config.name,
                self.limits,
                download=lambda fid: self._execute(
                    self.service.files().get_media(fileId=fid, supportsAllDrives=True)
                ),
                export=lambda fid, mime: self._execute(
                    self.service.files().export_media(fileId=fid, mimeType=mime)
                ),
                permissions=self._permissions,
                breadcrumb=[],
            )
        except ApiError as exc:  # this file only: skipped with the reason, its indexed version kept
            return Skipped(name, str(exc), doc_id=str(meta.get("id")))

    def _permissions(self, file_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._execute(
                self.service.permissions().list(
                    fileId=file_id,
                    supportsAllDrives=True,
                    pageToken=token,
                    fields="nextPageToken,permissions(type,role,emailAddress,domain)",
                )
            )
            found.extend(page.get("permissions") or [])
            token = page.get("nextPageToken")
            if not token:
                return found

    def _execute(self, request: Any) -> Any:
        """Run a request with googleapiclient's retries (429, 5xx, rate-limit 403s: exponential backoff, jitter)."""
        try:
            return request.execute(num_retries=self.settings.live_max_retries)
        except HttpError as exc:
            raise self._error(exc) from None
        except TransportError as exc:
            raise SourceUnavailable(
                f"{self.config.name}: Drive is unreachable ({type(exc).__name__})"
            ) from None
        except (
            GoogleAuthError
        ) as exc:  # the token endpoint refused the key (revoked, no delegation, bad subject)
            reason = str(exc).split(":", 1)[0][:80]
            raise SourceUnavailable(
                f"{self.config.name}: the service account in {credential_name(self.config)} was refused by the "
                f"token endpoint ({reason}); it needs scope {SCOPE}"
                + (f" and domain-wide delegation for {self.config.subject}" if self.config.subject else "")
            ) from None
        except (OSError, httplib2.HttpLib2Error) as exc:
            raise SourceUnavailable(
                f"{self.config.name}: Drive is unreachable ({type(exc).__name__})"
            ) from None

    def _error(self, exc: HttpError) -> Exception:
        status = int(exc.resp.status)
        reasons = {d.get("reason") for d in (exc.error_details or []) if isinstance(d, dict)}
        if status == 403 and "insufficientFilePermissions" in reasons:
            return SharingHidden(f"{self.config.name}: {HIDDEN_SHARING}")
        if status == 401 or (status == 403 and not reasons & (_SIZE_LIMITS | _RATE_LIMITS)):
            return SourceUnavailable(
                f"{self.config.name}: the service account in {credential_name(self.config)} was refused "
                f"(HTTP {status}); it needs scope {SCOPE} and access to the "
                + (f"shared drive {self.config.drive_id}" if self.config.drive_id else "files")
            )
        if reasons & _SIZE_LIMITS:
            return ApiError("over Drive's export size limit (10 MB); kept any indexed version", status)
        return ApiError(
            f"{self.config.name}: Drive answered HTTP {status} ({', '.join(sorted(r for r in reasons if r)) or 'no reason'})",
            status,
        )
