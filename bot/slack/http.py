"""HTTP (Events API) mode's front door: the ASGI app uvicorn serves, in front of Bolt's request handler.

Before Bolt sees a request it is read up to `RAG_SLACK_MAX_BODY_BYTES` (413 past it, cut off while reading), its
signature is checked (401), and its body must parse the way Bolt will parse it (400 with a short JSON error).
Empty bodies and requests no listener wants get 200, since Slack retries anything else. Every rejection is one
log line with the size and the reason, never the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_CLOCK_SKEW_S = 5 * 60  # Slack's rule: older signed requests may be replays
BOLT_VERIFICATION_LOGGER = "slack_bolt.RequestVerification"


class _NoRequestBodies(logging.Filter):
    """Bolt's failed-signature line carries the whole request body; keep the line, drop the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Invalid request signature"):
            record.msg = "Invalid request signature detected (body not logged)"
            record.args = ()
        return True


def keep_bodies_out_of_bolt_logs() -> None:
    """Install the filter on Bolt's request-verification logger (once per process)."""
    logger = logging.getLogger(BOLT_VERIFICATION_LOGGER)
    if not any(isinstance(f, _NoRequestBodies) for f in logger.filters):
        logger.addFilter(_NoRequestBodies())


def signature_problem(
    headers: dict[str, str], body: bytes, secret: str, now: float | None = None
) -> str | None:
    """Why a request is not signed by Slack with `secret`, or None when it is.

    Checked over the raw bytes: slack_sdk's verifier decodes the body as UTF-8 first and fails on other bytes."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp or not signature:
        return "missing signature headers"
    if not (timestamp.isascii() and timestamp.isdigit()):
        return "timestamp is not a number"
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return "timestamp too old or in the future"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None


def body_problem(body: bytes, content_type: str) -> str | None:
    """Why Bolt could not read this body, or None. Mirrors slack_bolt.request.internals.parse_body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type == "application/json" or text.startswith("{"):
        return _json_object_problem(text, "body")
    if "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _json_object_problem(payload, "payload")
    return None


def _json_object_problem(text: str, what: str) -> str | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return f"{what} is not valid JSON"
    if not isinstance(parsed, dict):
        return f"{what} is not a JSON object"
    if parsed.get("type") == "event_callback" and not isinstance(parsed.get("event"), dict):
        return "event is not a JSON object"  # Bolt and the listeners read event fields unchecked
    if parsed.get("type") == "block_actions" and not actions_ok(parsed.get("actions")):
        return "actions is not a list of actions"  # Bolt's matchers read actions[0]["action_id"] unchecked
    return None


def actions_ok(actions: object) -> bool:
    """A block_actions payload's `actions`: a non-empty list of objects with an action_id."""
    return (
        isinstance(actions, list)
        and bool(actions)
        and all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
    )


class SlackHttpFrontDoor:
    """ASGI app: size cap, signature check and body check, then Bolt's handler."""

    def __init__(self, handler: AsyncSlackRequestHandler, signing_secret: str, max_body_bytes: int) -> None:
        self.handler = handler
        self.secret = signing_secret
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.handler(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(send, 413, "body larger than RAG_SLACK_MAX_BODY_BYTES", int(declared))
            return
        body = await self._read(receive)
        if len(body) > self.max_body_bytes:
            await self._reject(send, 413, "body larger than RAG_SLACK_MAX_BODY_BYTES", len(body))
            return
        reason = signature_problem(headers, body, self.secret)
        if reason:
            await self._reject(send, 401, reason, len(body))
            return
        if not body.strip():
            log.info("empty slack request acknowledged", extra={"event": "slack_request_empty"})
            await _respond(send, 200, b"")
            return
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reason = body_problem(body, content_type)
        if reason:
            await self._reject(send, 400, reason, len(body))
            return
        await self.handler(scope, _replay(body, receive), self._unhandled_as_ack(scope, send))

    async def _read(self, receive: Receive) -> bytes:
        """The request body, stopping as soon as it passes the cap (what was read is all that is kept)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes or not message.get("more_body", False):
                break
        return b"".join(parts)

    def _unhandled_as_ack(self, scope: Scope, send: Send) -> Send:
        """Bolt answers 404 to requests no listener wants (unknown event types); Slack would retry those."""
        if scope.get("path") != self.handler.path:
            return send  # a wrong path stays a 404
        swallowed = False

        async def send_ack(message: Message) -> None:
            nonlocal swallowed
            if message["type"] == "http.response.start" and message["status"] == 404:
                swallowed = True
                log.info("unhandled slack request acknowledged", extra={"event": "slack_request_unhandled"})
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
                )
            elif swallowed and message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send(message)

        return send_ack

    async def _reject(self, send: Send, status: int, reason: str, size: int) -> None:
        log.warning(
            "slack request rejected",
            extra={"event": "slack_request_rejected", "status": status, "reason": reason, "bytes": size},
        )
        await _respond(send, status, json.dumps({"error": reason}).encode(), b"application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands Bolt the body already read, then whatever the server says next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def http_app(app: AsyncApp, signing_secret: str, max_body_bytes: int) -> SlackHttpFrontDoor:
    """What uvicorn serves in HTTP mode: the front door before Bolt's handler for /slack/events."""
    return SlackHttpFrontDoor(AsyncSlackRequestHandler(app), signing_secret, max_body_bytes)
