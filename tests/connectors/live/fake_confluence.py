"""A fake Confluence (Cloud under /wiki with REST v2 spaces and cursor pagination, or Data Center at the root
with `start` pagination) serving the documented shapes of content search, spaces and space permissions.

Data Center also queues the webhook bodies an admin-created webhook would POST for each change made through the
helpers (`webhooks`: `page_updated`, `page_trashed` with the `page` entity, `content_permissions_updated` with
`content`); Cloud sends none (its webhooks are for installed apps only), but queues the events Forge would hand
the relay app for a restriction change (`forge_events`: `avi:confluence:permissions_updated:page`, with the
documented `content` payload)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.connectors.live.fake_http import FakeApi, Reply, Request

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Page:
    id: str
    space: str
    title: str
    body: str
    when: datetime = T0
    version: int = 1
    ancestors: list[str] = field(default_factory=list)  # ids
    users: list[dict[str, str]] = field(default_factory=list)  # read restrictions
    groups: list[str] = field(default_factory=list)
    status: str = "current"  # current, archived, trashed
    type: str = "page"
    author: str = "Ada Lovelace"
    attachments: list[dict[str, Any]] = field(default_factory=list)  # {"id", "title", "data"}


class FakeConfluence(FakeApi):
    def __init__(
        self, flavor: str = "cloud", token: str = "secret-token", email: str | None = "bot@example.com"
    ) -> None:
        super().__init__()
        self.flavor = flavor
        self.context = "/wiki" if flavor == "cloud" else ""
        self.token = token
        self.email = email
        self.spaces: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, Page] = {}
        self.clock = T0
        self.webhooks: list[bytes] = []  # JSON bodies, Data Center only
        # Cloud: the events Forge hands the relay app (deploy/confluence-forge) for the ones it subscribes to
        self.forge_events: list[dict[str, Any]] = []

    # -- test helpers ----------------------------------------------------------------------------------------

    def add_space(
        self, key: str, name: str, read_groups: list[str] | None = None, anonymous: bool = False
    ) -> None:
        self.spaces[key] = {
            "id": str(1000 + len(self.spaces)),
            "key": key,
            "name": name,
            "groups": read_groups or [],
            "anonymous": anonymous,
        }

    def add_page(self, page: Page) -> Page:
        self.pages[page.id] = page
        return page

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def edit(self, page_id: str, body: str) -> None:
        page = self.pages[page_id]
        page.body, page.version, page.when = body, page.version + 1, self.tick()
        self._webhook("page", page)

    def restrict(self, page_id: str, users: list[str] = (), groups: list[str] = ()) -> None:
        """Change read restrictions: Confluence does not touch the page's version or lastmodified."""
        page = self.pages[page_id]
        page.users = [{"email": u, "accountId": f"acc-{u}"} for u in users]
        page.groups = list(groups)
        self._webhook("content", page)  # content_permissions_updated
        if self.flavor == "cloud":
            space = self.spaces[page.space]
            self.forge_events.append(
                {
                    "eventType": f"avi:confluence:permissions_updated:{page.type}",
                    "atlassianId": "acc-admin",
                    "content": {
                        "id": page.id,
                        "type": page.type,
                        "status": page.status,
                        "title": page.title,
                        "space": {"id": int(space["id"]), "key": page.space, "name": space["name"]},
                    },
                }
            )

    def trash(self, page_id: str) -> None:
        self.pages[page_id].status = "trashed"
        self._webhook("page", self.pages[page_id])  # page_trashed

    def _webhook(self, entity: str, page: Page) -> None:
        if self.flavor == "cloud":
            return
        ms = int(self.tick().timestamp() * 1000)
        body = {
            "timestamp": ms,
            "userAccountId": "acc-admin",
            entity: {
                "id": int(page.id),
                "title": page.title,
                "contentType": page.type,
                "spaceKey": page.space,
                "version": page.version,
                "self": f"{self.url()}/pages/viewpage.action?pageId={page.id}",
                "modificationDate": ms,
            },
        }
        self.webhooks.append(json.dumps(body).encode())

    def url(self) -> str:
        return self.base + self.context

    # -- routes ----------------------------------------------------------------------------------------------

    def route(self, req: Request) -> Reply:
        if not self._authorised(req):
            return Reply(401, {"message": "Unauthorized; scope does not match"})
        path = req.path[len(self.context) :] if req.path.startswith(self.context) else req.path
        if path == "/api/v2/spaces" and self.flavor == "cloud":
            return self._v2_spaces(req)
        if path in ("/api/v2/pages", "/api/v2/blogposts") and self.flavor == "cloud":
            return self._v2_contents(req, "page" if path.endswith("pages") else "blogpost")
        if m := re.fullmatch(r"/rest/api/space/([^/]+)", path):
            return self._space(m.group(1))
        if path == "/rest/api/content/search":
            return self._search(req)
        if path == "/rest/api/content":
            return self._v1_contents(req)
        if m := re.fullmatch(r"/download/attachments/([^/]+)/([^/]+)", path):
            page = self.pages.get(m.group(1))
            found = [a for a in (page.attachments if page else []) if a["title"] == m.group(2)]
            if not found:
                return Reply(404, {"message": "no attachment"})
            return Reply(body=found[0]["data"], content_type="application/octet-stream")
        return Reply(404, {"message": f"no route {req.path}"})

    def _authorised(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if self.flavor == "cloud" and self.email:
            return auth == "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return auth == f"Bearer {self.token}"

    def _v2_spaces(self, req: Request) -> Reply:
        keys = (req.arg("keys") or "").split(",")
        found = [s for k, s in self.spaces.items() if k in keys and not s.get("invisible")]
        offset = int(req.arg("cursor") or 0)
        limit = int(req.arg("limit") or 25)
        page = found[offset : offset + limit]
        links: dict[str, str] = {}
        if offset + limit < len(found):
            links["next"] = f"{self.context}/api/v2/spaces?" + urlencode(
                {"keys": ",".join(keys), "limit": limit, "cursor": offset + limit}
            )
        return Reply(
            body={
                "results": [{"id": s["id"], "key": s["key"], "name": s["name"]} for s in page],
                "_links": links,
            }
        )

    def _v2_contents(self, req: Request, kind: str) -> Reply:
        """REST v2 `GET /pages` (`/blogposts`): `space-id` and `status` filters (comma-separated or repeated;
        status defaults to current and archived for pages, current for blog posts), `limit` <= 250, cursor."""

        def values(name: str) -> set[str]:
            return {v for arg in req.query.get(name, []) for v in arg.split(",") if v}

        space_ids = values("space-id")
        statuses = values("status") or ({"current", "archived"} if kind == "page" else {"current"})
        allowed = (
            {"current", "archived", "deleted", "trashed"}
            if kind == "page"
            else {"current", "deleted", "trashed"}
        )
        if statuses - allowed:
            return Reply(400, {"errors": [{"status": 400, "code": "INVALID_REQUEST_PARAMETER"}]})
        keys = {k for k, s in self.spaces.items() if not space_ids or s["id"] in space_ids}
        found = sorted(
            (p for p in self.pages.values() if p.type == kind and p.space in keys and p.status in statuses),
            key=lambda p: int(p.id),
        )
        limit = min(int(req.arg("limit") or 25), 250)
        offset = int(req.arg("cursor") or 0)
        page = found[offset : offset + limit]
        links: dict[str, str] = {"base": self.url()}
        if offset + limit < len(found):
            query = {k: ",".join(v) for k, v in req.query.items() if k != "cursor"}
            links["next"] = f"{self.context}/api/v2/{kind}s?" + urlencode({**query, "cursor": offset + limit})
        results = [
            {
                "id": p.id,
                "status": p.status,
                "title": p.title,
                "spaceId": self.spaces[p.space]["id"],
                "version": {"number": p.version, "createdAt": p.when.isoformat().replace("+00:00", "Z")},
            }
            for p in page
        ]
        return Reply(body={"results": results, "_links": links})

    def _v1_contents(self, req: Request) -> Reply:
        """REST v1 `GET /content`: `spaceKey`, `type` (default page), `status` (default current; `any` is current
        and trashed), `limit`, `start` pagination."""
        statuses = set((req.arg("status") or "current").split(","))
        if "any" in statuses:
            statuses = {"current", "trashed"}
        kind = req.arg("type") or "page"
        key = req.arg("spaceKey")
        found = sorted(
            (
                p
                for p in self.pages.values()
                if p.type == kind and (key is None or p.space == key) and p.status in statuses
            ),
            key=lambda p: int(p.id),
        )
        limit = int(req.arg("limit") or 25)
        start = int(req.arg("start") or 0)
        page = found[start : start + limit]
        links: dict[str, str] = {"base": self.url(), "context": self.context}
        if start + limit < len(found):
            query = {k: v[0] for k, v in req.query.items() if k != "start"}
            links["next"] = "/rest/api/content?" + urlencode({**query, "start": start + limit})
        results = [{"id": p.id, "type": p.type, "status": p.status, "title": p.title} for p in page]
        return Reply(
            body={"results": results, "start": start, "limit": limit, "size": len(page), "_links": links}
        )

    def _space(self, key: str) -> Reply:
        space = self.spaces.get(key)
        if space is None or space.get("invisible"):  # gone, or the credential lost its read permission
            return Reply(404, {"message": "No space with key"})
        permissions = (
            [{"operation": {"operation": "read", "targetType": "space"}, "anonymousAccess": True}]
            if space["anonymous"]
            else [
                {
                    "operation": {"operation": "read", "targetType": "space"},
                    "subjects": {"group": {"results": [{"name": g} for g in space["groups"]]}},
                }
            ]
            if space["groups"]
            else []
        )
        permissions.append(
            {
                "operation": {"operation": "administer", "targetType": "space"},
                "subjects": {"group": {"results": [{"name": "admins"}]}},
            }
        )
        if space.get("permissions_hidden"):  # a credential that may not see them: Confluence leaves them out
            return Reply(body={"key": key, "name": space["name"]})
        return Reply(body={"key": key, "name": space["name"], "permissions": permissions})

    def _search(self, req: Request) -> Reply:
        cql = req.arg("cql") or ""
        expand = (req.arg("expand") or "").split(",")
        limit = int(req.arg("limit") or 25)
        if self.flavor == "cloud":
            offset = int(base64.b64decode(req.arg("cursor") or "MA==").decode())
        else:
            offset = int(req.arg("start") or 0)
        found = self._matches(cql)
        page = found[offset : offset + limit]
        if (
            self.flavor == "cloud"
            and any(e.startswith("ancestors.restrictions") for e in expand)
            and any(self.pages[a].status != "current" for p in page for a in p.ancestors if a in self.pages)
        ):  # CONFCLOUD-77618: an ancestor that is trashed (or a draft) fails the whole request
            return Reply(
                404, {"statusCode": 404, "message": "Cannot find content. Outdated version/old_draft/trashed"}
            )
        links: dict[str, str] = {"base": self.url(), "context": self.context}
        if offset + limit < len(found):
            query = {"cql": cql, "expand": ",".join(expand), "limit": limit}
            if self.flavor == "cloud":
                query["cursor"] = base64.b64encode(str(offset + limit).encode()).decode()
            else:
                query["start"] = offset + limit
            links["next"] = "/rest/api/content/search?" + urlencode(query)
        return Reply(
            body={
                "results": [self._content(p, expand) for p in page],
                "start": offset,
                "limit": limit,
                "size": len(page),
                "_links": links,
            }
        )

    def _matches(self, cql: str) -> list[Page]:
        spaces = re.search(r"space in \(([^)]*)\)", cql)
        keys = {k.strip().strip('"') for k in spaces.group(1).split(",")} if spaces else None
        since = re.search(r'lastmodified >= "([^"]+)"', cql)
        since_at = datetime.strptime(since.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC) if since else None
        ids = re.search(r"\bid in \(([^)]*)\)", cql)
        id_set = {i.strip() for i in ids.group(1).split(",")} if ids else None
        under = re.search(r"\bancestor in \(([^)]*)\)", cql)  # only as `(id in (…) or ancestor in (…))`
        under_set = {i.strip() for i in under.group(1).split(",")} if under else set()
        found = [
            p
            for p in self.pages.values()
            if p.status == "current"
            and not self.spaces[p.space].get("invisible")
            and (keys is None or p.space in keys)
            and (since_at is None or p.when >= since_at)
            and (id_set is None or p.id in id_set or bool(under_set & set(p.ancestors)))
        ]
        if "order by lastmodified asc" in cql:
            found.sort(key=lambda p: (p.when, int(p.id)))
        else:
            found.sort(key=lambda p: int(p.id))
        return found

    def _content(self, page: Page, expand: list[str]) -> dict[str, Any]:
        space = self.spaces[page.space]
        content: dict[str, Any] = {
            "id": page.id,
            "type": page.type,
            "status": page.status,
            "title": page.title,
            "_links": {"webui": f"/spaces/{page.space}/pages/{page.id}", "tinyui": f"/x/{page.id}"},
            "_expandable": {"space": f"/rest/api/space/{page.space}"},
        }
        if "space" in expand:
            content["space"] = {"key": page.space, "name": space["name"], "id": int(space["id"])}
        if "version" in expand:
            content["version"] = {
                "number": page.version,
                "when": page.when.isoformat().replace("+00:00", "Z"),
                "by": {"displayName": page.author, "type": "known"},
            }
        if "ancestors" in expand or any(e.startswith("ancestors.") for e in expand):
            content["ancestors"] = []
            for a in page.ancestors:
                if a not in self.pages:
                    continue
                ancestor: dict[str, Any] = {"id": a, "title": self.pages[a].title, "type": "page"}
                if any(e.startswith("ancestors.restrictions.read") for e in expand):
                    ancestor["restrictions"] = self._restrictions(self.pages[a])
                content["ancestors"].append(ancestor)
        if "children.attachment" in expand:
            content["children"] = {
                "attachment": {
                    "results": [
                        {
                            "id": a["id"],
                            "type": "attachment",
                            "title": a["title"],
                            "extensions": {
                                "mediaType": "application/octet-stream",
                                "fileSize": len(a["data"]),
                            },
                            "_links": {
                                "download": f"/download/attachments/{page.id}/{a['title']}",
                                "webui": f"/pages/viewpageattachments.action?pageId={page.id}",
                            },
                        }
                        for a in page.attachments
                    ],
                    "size": len(page.attachments),
                }
            }
        if "body.storage" in expand:
            content["body"] = {"storage": {"value": page.body, "representation": "storage"}}
        if any(e.startswith("restrictions.read") for e in expand):
            content["restrictions"] = self._restrictions(page)
        return content

    @staticmethod
    def _restrictions(page: Page) -> dict[str, Any]:
        return {
            "read": {
                "operation": "read",
                "restrictions": {
                    "user": {"results": page.users, "size": len(page.users)},
                    "group": {
                        "results": [{"type": "group", "name": g} for g in page.groups],
                        "size": len(page.groups),
                    },
                },
            }
        }
