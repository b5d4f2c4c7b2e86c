"""A small local Slack: the Web API methods ragbot calls, response_urls, and the Socket Mode WebSocket.

It records every call so tests can assert what the real Bolt app sent. Only Slack's servers are replaced; the
Bolt app, slack_sdk clients and the Socket Mode client are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0001"


@dataclass
class Call:
    method: str  # Web API method, or "respond" for a response_url post
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    fault: str | None = None  # what the fake answered instead of success, when a fault was injected


@dataclass
class Fault:
    """How one Web API method misbehaves: an HTTP status (429 with Retry-After, 503) or `ok: false`."""

    status: int = 200
    error: str | None = None  # Slack's error code for an `ok: false` reply (or a 429's body)
    retry_after: int | None = None
    times: int | None = None  # how many calls fail; None: every call
    match: dict[str, Any] = field(default_factory=dict)  # only calls with these params fail
    hang: bool = False  # never answer (until the fake stops): the client's timeout is what ends the call

    def applies(self, params: dict[str, Any]) -> bool:
        return (self.times is None or self.times > 0) and all(
            params.get(k) == v for k, v in self.match.items()
        )

    def response(self) -> web.Response:
        if self.times is not None:
            self.times -= 1
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.status == 200:
            return web.json_response({"ok": False, "error": self.error}, headers=headers)
        if self.status == 429:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        return web.Response(status=self.status, text="upstream unavailable", headers=headers)

    def describe(self) -> str:
        return self.error if self.status == 200 else str(self.status)


@dataclass
class Envelope:
    envelope_id: str
    sent_at: float
    acked_at: float | None = None
    ack_payload: dict[str, Any] | None = None


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (channel, thread ts) -> messages
        self.envelopes: dict[str, Envelope] = {}
        self.usergroups: dict[str, list[str]] = {}  # user group id (S…) -> member user ids
        self.usergroup_handles: dict[str, str] = {}  # user group id (S…) -> its handle (@legal -> "legal")
        self.users: dict[str, dict[str, Any]] = {}  # user id -> profile fields users.info returns (email…)
        self._stopping = asyncio.Event()
        self.channels: dict[
            str, dict[str, Any]
        ] = {}  # channel id -> conversations.info fields (name, is_private)
        self.faults: dict[str, list[Fault]] = {}  # method -> injected faults, first applicable wins
        self._ts = itertools.count(1)
        self._ws: list[web.WebSocketResponse] = []
        self._ws_connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # e.g. conversations.replies
        app.router.add_post("/respond/{name}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._stopping.set()  # hung calls end now
        for ws in self._ws:
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r") -> str:
        return f"{self.url}/respond/{name}"

    def next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    # --- what tests look at ------------------------------------------------------------------------------
    def calls_to(self, method: str, **match: Any) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and all(c.params.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, predicate, timeout: float = 20.0) -> Any:
        """Wait until predicate() returns something truthy (checked after every call), and return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; calls so far: {[c.method for c in self.calls]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    def _record(self, method: str, params: dict[str, Any], fault: str | None = None) -> None:
        self.calls.append(Call(method, params, fault=fault))
        self._changed.set()

    def inject(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int | None = None,
        hang: bool = False,
        **match: Any,
    ) -> Fault:
        """Make `method` fail (only for calls whose params include `match`), `times` times or always; `hang`
        leaves the call unanswered until the fake stops."""
        fault = Fault(
            status=status, error=error, retry_after=retry_after, times=times, match=match, hang=hang
        )
        self.faults.setdefault(method, []).append(fault)
        return fault

    def delivered(self) -> list[Call]:
        """Calls that showed a message to someone (posts, updates, ephemerals) and succeeded."""
        shown = ("chat.postMessage", "chat.update", "chat.postEphemeral", "respond")
        return [c for c in self.calls if c.method in shown and c.fault is None]

    # --- Web API -----------------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        # slack_sdk sends some methods' arguments as JSON, others as a form or in the query string.
        params: dict[str, Any] = dict(request.query)
        if request.method == "GET":
            pass
        elif request.content_type == "application/json":
            params |= await request.json()
        else:
            params |= dict(await request.post())
        for key in ("blocks", "attachments", "view"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        fault = next((f for f in self.faults.get(method, []) if f.applies(params)), None)
        if fault is not None:
            self._record(method, params, fault="hang" if fault.hang else fault.describe())
            if fault.hang:
                await self._stopping.wait()
            return fault.response()
        self._record(method, params)
        return web.json_response(self._reply(method, params))

    def _reply(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "team_id": TEAM_ID,
                "user": "ragbot",
            }
        if method == "chat.postMessage":
            ts = self.next_ts()
            message = {
                "type": "message",
                "ts": ts,
                "text": p.get("text", ""),
                "bot_id": BOT_ID,
                "user": BOT_USER_ID,
            }
            if p.get("thread_ts"):
                self.threads.setdefault((p["channel"], p["thread_ts"]), []).append(message)
            return {"ok": True, "channel": p["channel"], "ts": ts, "message": message}
        if method == "chat.update":
            for messages in self.threads.values():
                for m in messages:
                    if m["ts"] == p["ts"]:
                        m["text"] = p.get("text", "")
            return {"ok": True, "channel": p["channel"], "ts": p["ts"], "text": p.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "conversations.replies":
            messages = self.threads.get((p["channel"], p["ts"]), [])
            return {"ok": True, "messages": sorted(messages, key=lambda m: float(m["ts"])), "has_more": False}
        if method == "conversations.info":
            info = {"id": p["channel"], "name": p["channel"].lower(), "is_private": False}
            return {"ok": True, "channel": info | self.channels.get(p["channel"], {})}
        if method == "chat.getPermalink":
            return {
                "ok": True,
                "permalink": f"https://test.slack.com/archives/{p['channel']}/p{p['message_ts']}",
            }
        if method == "views.open":
            return {"ok": True, "view": {"id": f"V{next(self._ts)}", **(p.get("view") or {})}}
        if method == "usergroups.users.list":
            if p.get("usergroup") not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[p["usergroup"]]}
        if method == "users.info":
            if p.get("user") not in self.users:
                return {"ok": False, "error": "user_not_found"}
            profile = self.users[p["user"]]
            return {
                "ok": True,
                "user": {
                    "id": p["user"],
                    "name": p["user"].lower(),
                    "real_name": profile.get("real_name", ""),
                    "profile": profile,
                },
            }
        if method == "usergroups.list":
            include = str(p.get("include_users", "")).lower() in ("1", "true")
            return {
                "ok": True,
                "usergroups": [
                    {
                        "id": gid,
                        "handle": self.usergroup_handles.get(gid, gid.lower()),
                        "name": self.usergroup_handles.get(gid, gid),
                        "date_delete": 0,
                        **({"users": members} if include else {}),
                    }
                    for gid, members in self.usergroups.items()
                ],
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http://", "ws://") + "/socket"}
        return {"ok": True}

    async def _respond(self, request: web.Request) -> web.Response:
        params = {"name": request.match_info["name"], **(await request.json())}
        fault = next((f for f in self.faults.get("respond", []) if f.applies(params)), None)
        if fault is not None:
            self._record("respond", params, fault=fault.describe())
            return fault.response()
        self._record("respond", params)
        return web.Response(text="ok")

    # --- Socket Mode -------------------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}})
        self._ws_connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                envelope = self.envelopes.get(data.get("envelope_id", ""))
                if envelope is not None:
                    envelope.acked_at = time.monotonic()
                    envelope.ack_payload = data.get("payload")
                    self._record("socket_ack", data)
        return ws

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._ws_connected.wait(), timeout)

    async def send_envelope(self, kind: str, payload: dict[str, Any], retry_attempt: int = 0) -> Envelope:
        """Push one Socket Mode envelope ("events_api" | "slash_commands") to the connected app."""
        envelope = Envelope(envelope_id=uuid.uuid4().hex, sent_at=time.monotonic())
        self.envelopes[envelope.envelope_id] = envelope
        await self._ws[-1].send_json(
            {
                "envelope_id": envelope.envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )
        return envelope


# --- payload builders --------------------------------------------------------------------------------------
def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API body around one event."""
    return {
        "token": "legacy",
        "team_id": TEAM_ID,
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def mention(
    text: str, *, user: str = "U1", channel: str = "C1", ts: str, thread_ts: str | None = None
) -> dict:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(text: str, *, user: str = "U1", channel: str = "D1", ts: str) -> dict:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }


def reaction(kind: str, name: str, *, user: str, channel: str, ts: str) -> dict:
    return {
        "type": kind,
        "user": user,
        "reaction": name,
        "item_user": BOT_USER_ID,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def slash(command: str, text: str, *, user: str = "U1", channel: str = "C1", response_url: str) -> dict:
    return {
        "token": "legacy",
        "team_id": TEAM_ID,
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0001",
        "response_url": response_url,
        "trigger_id": "1.2.3",
    }


def channel_message(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str,
    thread_ts: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
) -> dict:
    """A plain message in a channel (what `message.channels` delivers), optionally a thread reply, edit or join."""
    event: dict[str, Any] = {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    for key, value in (("thread_ts", thread_ts), ("subtype", subtype), ("bot_id", bot_id)):
        if value:
            event[key] = value
    return event


def block_action(
    action_id: str,
    value: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    response_url: str,
    message: dict[str, Any] | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """A `block_actions` interaction payload, as Slack posts it (form field `payload`) when a button is clicked.

    `message` is the clicked message (absent for an ephemeral one, as on Slack)."""
    container: dict[str, Any] = {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0001",
        "token": "legacy",
        "container": container,
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "general"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if message is not None:
        container["message_ts"] = message.get("ts")
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        payload["message"] = message
    return payload


def button_in(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    """The one button with this action id in a message's blocks (actions blocks or section accessories)."""
    found = [
        element
        for block in blocks
        for element in [*block.get("elements", []), block.get("accessory") or {}]
        if element.get("action_id") == action_id
    ]
    assert len(found) == 1, f"{len(found)} buttons {action_id!r} in {blocks}"
    return found[0]


def view_submission(
    callback_id: str,
    private_metadata: str,
    values: dict[str, str],
    *,
    user: str = "U1",
    name: str | None = None,
) -> dict[str, Any]:
    """A `view_submission` payload: the modal's inputs by block id (each with one `v` plain-text field)."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {
            "id": user,
            "username": name or user.lower(),
            "name": name or user.lower(),
            "team_id": TEAM_ID,
        },
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": "1.2.4",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {
                "values": {
                    block: {"v": {"type": "plain_text_input", "value": text}}
                    for block, text in values.items()
                }
            },
        },
    }


def message_action(
    callback_id: str, message: dict[str, Any], *, user: str = "U1", channel: str = "C1", response_url: str
) -> dict[str, Any]:
    """A message shortcut payload (`message_action`), as Slack posts it when someone picks it on a message."""
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "name": user.lower()},
        "channel": {"id": channel, "name": "general"},
        "message": message,
        "message_ts": message.get("ts"),
        "trigger_id": "1.2.5",
        "response_url": response_url,
        "token": "legacy",
    }
