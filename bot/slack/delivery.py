"""Getting a reply to the asker whatever the Slack Web API answers.

Each Web API call is retried a bounded number of times on 429 and 5xx (and dropped connections), waiting as
long as Slack's `Retry-After` asks; a reply that still cannot be shown falls back, in order, to the same reply
as plain text without blocks, to an ephemeral message to the asker, and to a direct message. Every failed route
is logged as one line; when no route works the sink raises `Undelivered` for the conversation layer to record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.delivery import try_routes as shared_try_routes
from bot.slack.blocks import MESSAGE_TEXT_LIMIT, citation_line
from bot.slack.mrkdwn import truncate
from rag_core.types import Citation

log = logging.getLogger(__name__)

RETRIES = 2  # further attempts of one call after a 429, a 5xx or a dropped connection
BACKOFF_S = 0.25  # first wait when Slack gives no Retry-After; doubles each attempt
MAX_WAIT_S = 10.0  # longest Retry-After honoured; past it the next fallback route is tried instead
# What a Web API call can raise: Slack's answer, or no answer at all.
CALL_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)


class ResponseUrlError(Exception):
    """A response_url post answered with an HTTP error (it expires after 30 minutes or 5 posts)."""


@dataclass
class Reply:
    """One reply: the Block Kit form, and the plain mrkdwn text every fallback route shows."""

    text: str  # notification text that goes with the blocks
    blocks: list[dict[str, Any]] | None = None
    plain: str | None = None  # the whole reply without blocks (sources included); defaults to `text`

    @property
    def fallback_text(self) -> str:
        return self.plain or self.text


def plain_with_sources(text: str, citations: list[Citation], heading: str = "Sources") -> str:
    """Reply text followed by its numbered sources, for routes that show no blocks."""
    if not citations:
        return truncate(text, MESSAGE_TEXT_LIMIT)
    lines = [text, "", f"*{heading}*", *(citation_line(c) for c in citations)]
    return truncate("\n".join(lines), MESSAGE_TEXT_LIMIT)


def describe(exc: BaseException) -> str:
    """A short, secret-free name for a failed call: Slack's error code, the HTTP status, or the exception type."""
    if isinstance(exc, ResponseUrlError):
        return str(exc)
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        return str(code or f"http_{getattr(exc.response, 'status_code', '?')}")
    return type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    """Seconds to wait before retrying, or None when the failure is not worth retrying."""
    if not isinstance(exc, SlackApiError):
        return 0.0  # a dropped connection: retry after the backoff
    status = getattr(exc.response, "status_code", 200)
    if status != 429 and status < 500:
        return None  # `ok: false` errors (not_in_channel, invalid_blocks…) do not change on a retry
    headers: Mapping[str, Any] = getattr(exc.response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


async def call_with_retries(
    method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
) -> AsyncSlackResponse:
    """`call()`, retried up to RETRIES times on 429/5xx/connection errors, honouring Retry-After."""
    attempt = 0
    while True:
        try:
            return await call()
        except CALL_ERRORS as exc:
            retry_after = _retry_after(exc)
            if retry_after is None or attempt >= RETRIES:
                raise
            wait = min(max(retry_after, BACKOFF_S * 2**attempt), MAX_WAIT_S)
            attempt += 1
            log.info(
                "slack call retried",
                extra={
                    "event": "slack_retry",
                    "method": method,
                    "attempt": attempt,
                    "error": describe(exc),
                    "wait_s": wait,
                },
            )
            await asyncio.sleep(wait)


class ThreadDelivery:
    """Shows one reply in a thread, editing it in place, with every fallback route when Slack refuses."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str, user: str) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.ts: str | None = None  # the reply in the thread, once posted

    async def placeholder(self, text: str) -> None:
        """Post the "Searching…" reply; a failure is logged only (the final reply has its own fallbacks)."""
        try:
            self.ts = await self._post(text, None)
        except CALL_ERRORS as exc:
            self._route_failed("placeholder", exc)

    async def edit(self, text: str) -> None:
        """A streaming edit of the reply; one attempt (the next edit or the final reply follows)."""
        if self.ts:
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text)

    async def show(self, reply: Reply) -> str | None:
        """Show `reply`; return the thread message's ts, or None when only an ephemeral or DM got through.

        Raises Undelivered naming every route's error when none worked."""
        routes: list[tuple[str, Callable[[], Awaitable[str | None]]]] = []
        if self.ts:
            ts = self.ts
            if reply.blocks:
                routes.append(("update", lambda: self._update(ts, reply.text, reply.blocks)))
            routes.append(("update_plain", lambda: self._update(ts, reply.fallback_text, [])))
        if reply.blocks:
            routes.append(("post", lambda: self._post(reply.text, reply.blocks)))
        routes.append(("post_plain", lambda: self._post(reply.fallback_text, None)))
        if self.user:
            routes.append(("ephemeral", lambda: self._ephemeral(reply.fallback_text)))
            routes.append(("direct_message", lambda: self._direct_message(reply.fallback_text)))
        route, shown_ts = await try_routes(routes, self.channel)
        if route.startswith(("update", "post")):
            self.ts = shown_ts
            return shown_ts
        return None

    async def _post(self, text: str, blocks: list[dict[str, Any]] | None) -> str:
        resp = await call_with_retries(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
            ),
        )
        return str(resp["ts"])

    async def _update(self, ts: str, text: str, blocks: list[dict[str, Any]] | None) -> str:
        await call_with_retries(
            "chat.update",
            lambda: self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=blocks),
        )
        return ts

    async def _ephemeral(self, text: str) -> None:
        await call_with_retries(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=self.channel, user=self.user, text=text, thread_ts=self.thread_ts
            ),
        )

    async def _direct_message(self, text: str) -> None:
        # A user id as the channel posts to the app's direct message with that person.
        await call_with_retries(
            "chat.postMessage", lambda: self.client.chat_postMessage(channel=self.user, text=text)
        )

    def _route_failed(self, route: str, exc: BaseException) -> None:
        _route_failed(route, self.channel, exc)


class ResponseUrlDelivery:
    """Shows a slash command's ephemeral reply through its response_url, with the same fallbacks after it:
    plain text, then `chat.postEphemeral`, then a direct message."""

    def __init__(self, respond: AsyncRespond, client: AsyncWebClient, channel: str, user: str) -> None:
        self.respond = respond
        self.client = client
        self.channel = channel
        self.user = user

    async def show(self, reply: Reply) -> None:
        """Raises Undelivered naming every route's error when none worked."""
        routes: list[tuple[str, Callable[[], Awaitable[str | None]]]] = []
        if reply.blocks:
            routes.append(("respond", lambda: self._respond(reply.text, reply.blocks)))
        routes.append(("respond_plain", lambda: self._respond(reply.fallback_text, None)))
        if self.user and self.channel:
            routes.append(("ephemeral", lambda: self._ephemeral(reply.fallback_text)))
        if self.user:
            routes.append(("direct_message", lambda: self._direct_message(reply.fallback_text)))
        await try_routes(routes, self.channel)

    async def _respond(self, text: str, blocks: list[dict[str, Any]] | None) -> None:
        # The webhook client returns failures (an expired response_url, a 5xx) instead of raising them.
        resp = await self.respond(text=text, blocks=blocks, response_type="ephemeral")
        if resp.status_code != 200:
            raise ResponseUrlError(f"http_{resp.status_code}")

    async def _ephemeral(self, text: str) -> None:
        await call_with_retries(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(channel=self.channel, user=self.user, text=text),
        )

    async def _direct_message(self, text: str) -> None:
        await call_with_retries(
            "chat.postMessage", lambda: self.client.chat_postMessage(channel=self.user, text=text)
        )


async def try_routes(
    routes: list[tuple[str, Callable[[], Awaitable[str | None]]]], channel: str
) -> tuple[str, str | None]:
    """The first route that worked and what it returned (see bot.delivery)."""
    failures = (*CALL_ERRORS, ResponseUrlError)
    return await shared_try_routes("slack", routes, failures=failures, describe=describe, channel=channel)


def _route_failed(route: str, channel: str, exc: BaseException) -> None:
    log.warning(
        "slack delivery route failed",
        extra={"event": "slack_delivery_failed", "route": route, "channel": channel, "error": describe(exc)},
    )
