"""Confluence Data Center webhooks, and Cloud's Forge relay (deploy/confluence-forge), as change hints for the
Confluence source (see `connectors/live_events.py`).

The relay posts `{"eventType": "avi:confluence:permissions_updated:page", "content": {"id", "type"}}` for the
restriction and move events Forge hands it, signed the same way, so one route and one parser serve both.

Data Center (7.7+) sends an admin-created webhook's events as JSON POSTs signed with its secret: header
`X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`. Bodies carry the entity they are about (`page`, `blog`,
`attachment` with its `parent`, `content` for `content_permissions_updated`), each with its `id`. A hint is that
id: the next poll reads those pages and the pages under them again (one `(id in (…) or ancestor in (…))` search
per 50: restrictions inherit), so a restriction change is applied at the next poll instead of the next id
listing; an id the search no longer returns (purged, or restricted away from the bot's account) is deleted.
The hints only add to what the poll reads: a lost webhook leaves the change to the id listing, as without
webhooks. Space events are not hints (a space's permissions are read at every poll, and
applied to the pages at the id listing).

The route answers without waiting on Redis: the signature and the JSON are checked in the request's handler (an
HMAC of a capped body takes microseconds), and the hints are written by a `HintWriter`'s thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from connectors.live_events import CLOSE_DRAIN_S, QUEUE_EVENTS, EventLog, HintWriter, Receiver

log = logging.getLogger(__name__)

RECEIVER = "confluence"
_ENTITIES = ("page", "blog", "blogpost", "content")


def signature(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature` value Confluence sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, header: str | None, secret: str) -> bool:
    return bool(header) and hmac.compare_digest(signature(body, secret), str(header).strip())


def hints_of(payload: dict[str, Any]) -> list[str]:
    """The page and blog post ids a webhook body is about (an attachment's: its container's)."""
    found: list[str] = []
    for key in _ENTITIES:
        entity = payload.get(key)
        if isinstance(entity, dict) and entity.get("id") is not None:
            found.append(str(entity["id"]))
    attachment = payload.get("attachment")
    if isinstance(attachment, dict):
        parent = attachment.get("parent") or attachment.get("container") or {}
        if isinstance(parent, dict) and parent.get("id") is not None:
            found.append(str(parent["id"]))
    return found


class ConfluenceChangeRecorder:
    """What the webhook route calls with each POST: checks the signature, queues the hints for its writer."""

    def __init__(self, redis_url: str, secret: str, queue_events: int = QUEUE_EVENTS) -> None:
        self.secret = secret
        self.receiver = Receiver(EventLog(redis_url, RECEIVER)).start()
        self.writer = HintWriter(self.receiver, queue_events)

    def receive(self, body: bytes, header: str | None) -> int:
        """The HTTP status to answer: 401 for a body not signed with the secret, 400 for one that is not
        JSON, else 204 (queued, or nothing to record). Never waits on Redis: a write that fails later ends the
        epoch instead (a 204 it was before too: a redelivery would not be needed, the next poll reads everything)."""
        if not signed(body, header, self.secret):
            log.warning(
                "confluence webhook with a bad signature refused",
                extra={"event": "confluence_webhook_refused"},
            )
            return 401
        try:
            payload = json.loads(body)
        except ValueError:
            return 400
        if isinstance(payload, dict):
            self.writer.record(hints_of(payload))
        return 204

    def flush(self, timeout: float) -> bool:
        """Wait until the hints of every webhook received so far are written; False if `timeout` came first."""
        return self.writer.flush(timeout)

    def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """On shutdown: what is queued gets `drain_s` to reach Redis, then the receiver stops (its epoch ends)."""
        self.writer.close(drain_s)
        self.receiver.log.close()
