"""Confluence Cloud and Data Center / Server over REST, polled with CQL on `lastmodified`.

Both flavors answer the same content search (`/rest/api/content/search?cql=…`, `_links.next` pagination: a
cursor on Cloud, `start` on Data Center) with bodies in storage format, versions, ancestors and the read
restrictions of the page and of its ancestors (which it inherits) expanded, so one request brings 50 whole
pages. Cloud's spaces come from REST v2 (`/api/v2/spaces?keys=…`, cursor pagination). The checkpoint is the
newest `version.when` committed; the next poll asks for `lastmodified >= checkpoint - 14 h` (CQL reads times
in the account's time zone, which may be up to 14 h off UTC; pages seen again are unchanged and cost no
embedding). Each poll also lists the spaces' content that is gone and deletes it: on Cloud trashed, archived and deleted pages and blog posts (REST v2
`/pages` and `/blogposts` with `status`, 250 ids a request: two requests while the trash is small), on Data
Center trashed ones (REST v1 `/content?status=trashed`, a request per space and type). Restriction changes touch
neither `lastmodified` nor anything else a cheap request shows: they, purged pages, and Data Center's archived
pages are found by the id listing (every `RAG_LIVE_PRUNE_EVERY` syncs and on `--full`), which brings each page's
restrictions — or, with Data Center's webhooks or Cloud's Forge relay pointed at the bot (`events.py`), by the
next poll, which reads again the pages they named and the pages under them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from connectors.archive import Limits
from connectors.confluence_api.access import page_access, space_access
from connectors.confluence_api.events import RECEIVER
from connectors.confluence_xml import storage_to_markdown
from connectors.errors import ExtractError, Skipped, SourceUnavailable
from connectors.formats import extract, supported
from connectors.live import Batch, Checkpoint, Listed, LiveConnector
from connectors.live_events import EventLog, Pending
from connectors.live_http import ApiClient, ApiError, read_secret
from rag_core.permissions import Access
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

log = logging.getLogger(__name__)

PAGE_SIZE = 50  # pages per search request with bodies (Cloud caps expanded bodies near this)
LIST_SIZE = 200  # ids per request of the slim listing
GONE_SIZE = 250  # ids per REST v2 request of the trash / archive listing (v2's documented maximum)
# REST v2 statuses of content no longer to be found: archived pages, trashed or deleted pages and blog posts
_GONE = (("pages", "archived,trashed,deleted"), ("blogposts", "trashed,deleted"))
_OVERLAP = timedelta(hours=14)
_RESTRICTIONS = "restrictions.read.restrictions.user,restrictions.read.restrictions.group"
# the ancestors' own restrictions, which the page inherits (Onyx expands the same)
_ANCESTOR_RESTRICTIONS = (
    "ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group"
)
_EXPAND = ",".join(
    ["body.storage", "version", "space", "ancestors", "history", _RESTRICTIONS, "children.attachment"]
    + [_ANCESTOR_RESTRICTIONS]
)
_EXPAND_SLIM = f"ancestors,{_RESTRICTIONS},children.attachment,{_ANCESTOR_RESTRICTIONS}"


class ConfluenceApiConnector(LiveConnector):
    """Pages and blog posts of the configured spaces."""

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        token = read_secret(config)
        if config.flavor == "cloud" and config.email:
            basic = base64.b64encode(f"{config.email}:{token}".encode()).decode()
            auth = f"Basic {basic}"
        else:  # Data Center personal access token, or a Cloud OAuth bearer token
            auth = f"Bearer {token}"
        needs = (
            f"read access to spaces {', '.join(config.spaces)} (OAuth scopes read:confluence-content.all, "
            "read:confluence-space.summary, search:confluence; for REST v2 read:space:confluence, "
            "read:page:confluence, read:blogpost:confluence)"
            if config.flavor == "cloud"
            else f"a personal access token of a user who can view spaces {', '.join(config.spaces)}"
        )
        self.http = ApiClient(
            config, settings, config.url or "", {"Authorization": auth, "Accept": "application/json"}, needs
        )
        self._spaces: dict[str, tuple[str, Access]] | None = None  # key -> (name, access), the visible ones
        self._unseen: list[str] = []  # configured spaces that do not exist or the credential cannot see
        self._space_ids: dict[str, str] = {}  # key -> REST v2 id (Cloud)
        self._events: EventLog | None = None

    # -- the interface ---------------------------------------------------------------------------------------

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[Batch]:
        since = _parse_when((checkpoint or {}).get("since"))
        was = (checkpoint or {}).get("events")
        pending = self._pending(was)
        seen_spaces = sorted(self.spaces())
        was_spaces = None if checkpoint is None else checkpoint.get("spaces")
        if self._unseen:
            unseen = self._unseen_spaces()
            # one the last poll saw may have indexed pages (as may any, with a checkpoint from before); a first
            # load has none
            unseen.wants_listing = since is not None and any(
                was_spaces is None or key in was_spaces for key in self._unseen
            )
            yield unseen
        searches: list[tuple[str, list[str] | None]] = []  # (CQL, the spaces its checkpoints record)
        fresh = [k for k in seen_spaces if was_spaces is not None and k not in was_spaces]
        if since is not None and fresh:  # added to `spaces`, or visible again: read whole, as at a load
            searches.append((f"{self._cql(fresh)} order by lastmodified asc", was_spaces))
        cql = self._cql()
        if since is not None:
            cql += f' and lastmodified >= "{(since - _OVERLAP).strftime("%Y-%m-%d %H:%M")}"'
        searches.append((f"{cql} order by lastmodified asc", seen_spaces))
        newest = since
        seen: set[str] = set()
        for query, marked in searches:
            for results in self._search(query, _EXPAND, PAGE_SIZE):
                batch = Batch()
                for content in results:
                    seen.add(str(content.get("id")))
                    batch.documents.extend(self._with_attachments(content))
                    when = _parse_when((content.get("version") or {}).get("when"))
                    # only the window's own pages move `since` (ordered by lastmodified, a cut-short poll
                    # resumes after the last one committed); new spaces' pages come in no such order
                    if marked is seen_spaces and when is not None and (newest is None or when > newest):
                        newest = when
                # the webhook position moves with the last batch only: a poll cut short reads the same hints
                # again; while new spaces are read whole, the recorded spaces do not move (cut short, the next
                # poll reads them whole again)
                batch.checkpoint = {
                    "since": newest.isoformat() if newest else None,
                    "events": was,
                    "spaces": marked,
                }
                yield batch
        if since is not None:  # the first load has nothing to delete
            hinted = sorted(set(pending.hints) - seen, key=lambda i: (len(i), i))
            if hinted:  # pages a webhook named (a restriction change shows nowhere else before the listing)
                yield self._named(hinted)
            yield Batch(deleted=list(self._gone() if self.config.flavor == "cloud" else self._trashed()))
        yield Batch(
            checkpoint={
                "since": newest.isoformat() if newest else None,
                "events": pending.position,
                "spaces": seen_spaces,
            }
        )

    def _pending(self, was: str | None) -> Pending:
        """Page ids Data Center's webhooks named since the last poll (`events.py`); they only add to the poll,
        so whether the log is complete does not matter: a lost webhook leaves its change to the id listing."""
        if not self.settings.redis_url:
            return Pending()
        if self._events is None:
            self._events = EventLog(self.settings.redis_url, RECEIVER)
        return self._events.read(was)

    def _named(self, ids: list[str]) -> Batch:
        """The pages (and their attachments) a webhook named, and the pages under them (a restriction change
        reaches them too), read again; a named one the search no longer returns (purged, or restricted away
        from this account) is deleted."""
        batch = Batch()
        found: set[str] = set()
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ",".join(ids[start : start + PAGE_SIZE])
            cql = f"{self._cql()} and (id in ({chunk}) or ancestor in ({chunk}))"
            for results in self._search(cql, _EXPAND, PAGE_SIZE):
                for content in results:
                    found.add(str(content.get("id")))
                    batch.documents.extend(self._with_attachments(content))
        batch.deleted = [i for i in ids if i not in found]
        return batch

    def list_ids(self) -> Iterator[Listed]:
        spaces = self.spaces()
        for results in self._search(self._cql(), _EXPAND_SLIM, LIST_SIZE):
            for content in results:
                key = (content.get("space") or {}).get("key") or _space_key(content)
                space = spaces.get(key, ("", Access.everyone()))[1]
                access = page_access(content, space)
                yield Listed(str(content["id"]), access)
                for attachment in _indexable(content):
                    yield Listed(f"{content['id']}/{attachment['id']}", access)

    def fetch(self, ids: list[str]) -> Iterator[Document | Skipped]:
        pages = sorted({doc_id.split("/", 1)[0] for doc_id in ids})  # an attachment comes with its page
        for start in range(0, len(pages), PAGE_SIZE):
            chunk = pages[start : start + PAGE_SIZE]
            cql = f"{self._cql()} and id in ({','.join(chunk)})"
            for results in self._search(cql, _EXPAND, PAGE_SIZE):
                for content in results:
                    yield from self._with_attachments(content)

    def close(self) -> None:
        self.http.close()
        if self._events is not None:
            self._events.close()

    @property
    def calls(self) -> int:
        return self.http.calls

    # -- spaces ------------------------------------------------------------------------------------------------

    def spaces(self) -> dict[str, tuple[str, Access]]:
        """Each visible configured space's name and read access; the others are kept in `_unseen` (the poll
        skips them), and none visible fails the sync."""
        if self._spaces is not None:
            return self._spaces
        names: dict[str, str] = {}
        if self.config.flavor == "cloud":  # REST v2: cursor-paginated, names by key
            path: str | None = "/api/v2/spaces"
            params: dict[str, Any] | None = {"keys": ",".join(self.config.spaces), "limit": 250}
            while path:
                data = self.http.get_json(path, params)
                for found in data.get("results") or []:
                    names[found["key"]] = found.get("name") or found["key"]
                    self._space_ids[found["key"]] = str(found.get("id") or "")
                path, params = (data.get("_links") or {}).get("next"), None
        spaces: dict[str, tuple[str, Access]] = {}
        for key in self.config.spaces:
            space = None if self.config.flavor == "cloud" and key not in names else self._space(key)
            if space is None:
                self._unseen.append(key)  # the other spaces sync; the poll says so (`_unseen_spaces`)
                continue
            if not space.get("permissions"):  # documented (docs/permissions.md), but an operator should know
                log.warning(
                    "confluence space permissions are not visible to the credential: the space's unrestricted "
                    "pages go to everyone who may use the source (bound them with visible_to)",
                    extra={
                        "event": "confluence_space_permissions_hidden",
                        "source": self.config.name,
                        "space": key,
                    },
                )
            spaces[key] = (names.get(key) or space.get("name") or key, space_access(space))
        if not spaces:
            raise SourceUnavailable(
                f"{self.config.name}: space {self._unseen[0]} does not exist or the credential cannot see it"
                if len(self._unseen) == 1
                else f"{self.config.name}: no space of {', '.join(self._unseen)} exists or is visible to the "
                "credential"
            )
        self._spaces = spaces
        return spaces

    def _space(self, key: str) -> dict[str, Any] | None:
        """`GET /rest/api/space/{key}` with its permissions; None when it does not exist for this credential."""
        try:
            return dict(self.http.get_json(f"/rest/api/space/{key}", {"expand": "permissions"}))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _unseen_spaces(self) -> Batch:
        """The configured spaces the credential cannot see, skipped with why and one line each."""
        batch = Batch()
        for key in self._unseen:
            log.warning(
                "confluence space does not exist or the credential cannot see it; skipped",
                extra={"event": "confluence_space_not_visible", "source": self.config.name, "space": key},
            )
            batch.documents.append(
                Skipped(
                    f"space {key}",
                    f"space {key} does not exist or the credential cannot see it: its pages leave the index "
                    "(give the account read access to the space to index it)",
                )
            )
        return batch

    # -- internals ---------------------------------------------------------------------------------------------

    def _with_attachments(self, content: dict[str, Any]) -> list[Document | Skipped]:
        """A page or blog post read from a search, then its indexable attachments (none when it was skipped)."""
        page = self._document(content)
        return [page, *self._attachments(content, page)] if isinstance(page, Document) else [page]

    def _cql(self, spaces: list[str] | None = None) -> str:
        keys = ",".join(f'"{key}"' for key in (self.spaces() if spaces is None else spaces))  # visible ones
        return f"space in ({keys}) and type in (page, blogpost)"

    def _search(self, cql: str, expand: str, limit: int) -> Iterator[list[dict[str, Any]]]:
        """Each page of results of a CQL content search, following `_links.next`."""
        self.spaces()  # fail on a bad space (or credential) before reading anything
        path: str | None = "/rest/api/content/search"
        params: dict[str, Any] | None = {"cql": cql, "expand": expand, "limit": limit}
        apart = False  # the ancestors' restrictions read apart (after a CONFCLOUD-77618 404)
        while path:
            try:
                data = self.http.get_json(path, params)
            except ApiError as exc:
                if exc.status != 404 or apart or _ANCESTOR_RESTRICTIONS not in expand:
                    raise
                # Cloud fails a whole search expanding ancestors' restrictions when one result's ancestor is
                # trashed or a draft (CONFCLOUD-77618); the same request without them, then they are read apart
                log.warning(
                    "confluence could not expand ancestors' restrictions; reading them apart",
                    extra={"event": "confluence_ancestors_apart", "source": self.config.name},
                )
                apart = True
                path, params = _without_ancestor_restrictions(path, params)
                continue
            self._site = (data.get("_links") or {}).get("base") or self.http.base_url
            results = list(data.get("results") or [])
            if apart:
                self._fill_ancestor_restrictions(results)
            yield results
            path, params = (data.get("_links") or {}).get("next"), None

    def _fill_ancestor_restrictions(self, results: list[dict[str, Any]]) -> None:
        """Each result's ancestors get their own restrictions from one `id in (…)` search per 200; an ancestor
        the search does not return (trashed, a draft) has none to add."""
        ancestors = [
            a for content in results for a in content.get("ancestors") or [] if a.get("id") is not None
        ]
        ids = sorted({str(a["id"]) for a in ancestors}, key=lambda i: (len(i), i))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), LIST_SIZE):
            cql = f"{self._cql()} and id in ({','.join(ids[start : start + LIST_SIZE])})"
            for page in self._search(cql, _RESTRICTIONS, LIST_SIZE):
                found.update((str(item.get("id")), item.get("restrictions") or {}) for item in page)
        for ancestor in ancestors:
            ancestor["restrictions"] = found.get(str(ancestor["id"]), {})

    def _gone(self) -> Iterator[str]:
        """Ids of the spaces' pages and blog posts that are archived, trashed or deleted now (REST v2)."""
        space_ids = ",".join(self._space_ids[key] for key in self.config.spaces if self._space_ids.get(key))
        if not space_ids:  # without a space filter v2 would list the whole site's trash
            return
        for kind, statuses in _GONE:
            path: str | None = f"/api/v2/{kind}"
            params: dict[str, Any] | None = {"space-id": space_ids, "status": statuses, "limit": GONE_SIZE}
            while path:
                data = self.http.get_json(path, params)
                yield from (str(item["id"]) for item in data.get("results") or [] if item.get("id"))
                path, params = (data.get("_links") or {}).get("next"), None

    def _trashed(self) -> Iterator[str]:
        """Data Center (no REST v2): ids of the spaces' trashed pages and blog posts, REST v1 content with
        `status=trashed`, per space and type."""
        for key in self.spaces():
            for kind in ("page", "blogpost"):
                path: str | None = "/rest/api/content"
                params: dict[str, Any] | None = {
                    "spaceKey": key,
                    "type": kind,
                    "status": "trashed",
                    "limit": LIST_SIZE,
                }
                while path:
                    data = self.http.get_json(path, params)
                    yield from (str(item["id"]) for item in data.get("results") or [] if item.get("id"))
                    path, params = (data.get("_links") or {}).get("next"), None

    def _attachments(self, content: dict[str, Any], page: Document) -> Iterator[Document | Skipped]:
        """Attachments of the supported types, each its own document under its page, with the page's access."""
        attachments = ((content.get("children") or {}).get("attachment") or {}).get("results") or []
        for attachment in attachments:
            title = str(attachment.get("title") or attachment.get("id"))
            doc_id = f"{page.id}/{attachment.get('id')}"
            where = f"{'/'.join(page.breadcrumb[:1])}/{page.title}/{title}"
            if not supported(title):
                yield Skipped(
                    where, f"attachment type {PurePosixPath(title).suffix or '(none)'} is not indexed"
                )
                continue
            size = int((attachment.get("extensions") or {}).get("fileSize") or 0)
            if size > self.settings.max_file_bytes:
                yield Skipped(
                    where,
                    f"file is {size:,} bytes, over the max_file_bytes limit of {self.settings.max_file_bytes:,}",
                )
                continue
            download = str((attachment.get("_links") or {}).get("download") or "")
            try:
                data = self.http.get_bytes(f"{getattr(self, '_site', self.http.base_url)}{download}")
                extracted = extract(title, data, Limits.from_settings(self.settings))
            except (ApiError, ExtractError) as exc:
                yield Skipped(where, str(exc), doc_id=doc_id)
                continue
            webui = (attachment.get("_links") or {}).get("webui") or ""
            yield Document(
                id=doc_id,
                source=self.config.name,
                title=title,
                text=extracted.text,
                url=f"{getattr(self, '_site', self.http.base_url)}{webui}" if webui else page.url,
                breadcrumb=[*page.breadcrumb, page.title],
                author=extracted.author or page.author,
                modified=extracted.modified or page.modified,
                size=len(data),
                access=page.access,
            )

    def _document(self, content: dict[str, Any]) -> Document | Skipped:
        page_id = str(content.get("id"))
        title = str(content.get("title") or page_id)
        space = content.get("space") or {}
        key = space.get("key") or _space_key(content)
        space_name, space_acc = self.spaces().get(key, (space.get("name") or key or "", Access.everyone()))
        body = ((content.get("body") or {}).get("storage") or {}).get("value") or ""
        try:
            text = storage_to_markdown(body) if body.strip() else ""
        except ExtractError as exc:
            return Skipped(f"{key}/{title}", str(exc), doc_id=page_id)
        version = content.get("version") or {}
        author = (version.get("by") or {}).get("displayName") or (
            (content.get("history") or {}).get("createdBy") or {}
        ).get("displayName")
        webui = (content.get("_links") or {}).get("webui") or ""
        return Document(
            id=page_id,
            source=self.config.name,
            title=title,
            text=text,
            url=f"{getattr(self, '_site', self.http.base_url)}{webui}" if webui else "",
            breadcrumb=[space_name, *[str(a.get("title")) for a in content.get("ancestors") or []]],
            author=author,
            modified=_parse_when(version.get("when")),
            size=len(body.encode()),
            access=page_access(content, space_acc),
        )


def _indexable(content: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The page's attachments of a supported type (`children.attachment`): the ones that may be indexed."""
    attachments = ((content.get("children") or {}).get("attachment") or {}).get("results") or []
    for attachment in attachments:
        if supported(str(attachment.get("title") or "")):
            yield attachment


def _without_ancestor_restrictions(
    path: str, params: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """The same search request (first, or a `_links.next` link) with plain `ancestors` instead of theirs."""

    def plain(expand: str) -> str:
        return ",".join(e for e in expand.split(",") if not e.startswith("ancestors."))

    if params is not None:
        return path, {**params, "expand": plain(str(params.get("expand") or ""))}
    url = urlsplit(path)
    query = [(k, plain(v) if k == "expand" else v) for k, v in parse_qsl(url.query, keep_blank_values=True)]
    return urlunsplit(url._replace(query=urlencode(query))), None


def _space_key(content: dict[str, Any]) -> str:
    """The space key from `_expandable.space` (`/rest/api/space/KEY`) when the space was not expanded."""
    link = str((content.get("_expandable") or {}).get("space") or "")
    return link.rsplit("/", 1)[-1]


def _parse_when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
