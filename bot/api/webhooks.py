"""Webhooks sources push to the bot: Confluence Data Center's, as change hints for the Confluence source.

`POST /webhooks/confluence` (outside `/v1/`: authenticated by the body's HMAC signature, `X-Hub-Signature`, with
`RAG_CONFLUENCE_WEBHOOK_SECRET`, not by an API token). Mounted when that secret and `RAG_REDIS_URL` are set;
404 otherwise. The recorder belongs to the service serving the API (`confluence_webhooks`): built when it starts,
closed when it stops. See connectors/confluence_api/events.py and docs/connectors.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging

from fastapi import APIRouter, Request, Response

from connectors.confluence_api.events import ConfluenceChangeRecorder
from connectors.live_events import recording
from rag_core.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter()


def confluence_recorder(settings: Settings) -> ConfluenceChangeRecorder | None:
    secret = getattr(
        settings, "confluence_webhook_secret", None
    )  # a BotSettings field (the API's own process)
    if secret is None or not secret.get_secret_value():
        return None
    if not settings.redis_url:
        log.warning(
            "RAG_CONFLUENCE_WEBHOOK_SECRET is set but RAG_REDIS_URL is not: Confluence webhooks are not received",
            extra={"event": "confluence_webhooks_off"},
        )
        return None
    return ConfluenceChangeRecorder(settings.redis_url, secret.get_secret_value())


def confluence_webhooks(
    settings: Settings,
) -> contextlib.AbstractAsyncContextManager[ConfluenceChangeRecorder | None]:
    """The recorder the route uses, for as long as the API serves (`live_events.recording`)."""
    return recording(functools.partial(confluence_recorder, settings))


@router.post("/webhooks/confluence", include_in_schema=False)
async def confluence_webhook(request: Request) -> Response:
    """Answered on the loop, never waiting on Redis: the body is capped (the API's body limit), its HMAC takes
    microseconds, and the recorder only queues the hints for its writer thread."""
    recorder: ConfluenceChangeRecorder | None = getattr(request.app.state, "confluence_webhooks", None)
    if recorder is None:
        return Response(status_code=404)
    body = await request.body()
    return Response(status_code=recorder.receive(body, request.headers.get("x-hub-signature")))
