"""Webhooks sources push to the bot: Confluence Data Center's, as change hints for the Confluence source.

`POST /webhooks/confluence` (outside `/v1/`: authenticated by the body's HMAC signature, `X-Hub-Signature`, with
`RAG_CONFLUENCE_WEBHOOK_SECRET`, not by an API token). Mounted when that secret and `RAG_REDIS_URL` are set;
404 otherwise. See connectors/confluence_api/events.py and docs/connectors.md.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response

from connectors.confluence_api.events import ConfluenceChangeRecorder
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


@router.post("/webhooks/confluence", include_in_schema=False)
async def confluence_webhook(request: Request) -> Response:
    recorder: ConfluenceChangeRecorder | None = getattr(request.app.state, "confluence_webhooks", None)
    if recorder is None:
        return Response(status_code=404)
    body = await request.body()
    status = await asyncio.to_thread(recorder.receive, body, request.headers.get("x-hub-signature"))
    return Response(status_code=status)
