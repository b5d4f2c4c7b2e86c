"""A fake Slack Web API for the threads source: auth.test, conversations.history/replies/info/members, users.info,
with Slack's shapes (`ok`, `response_metadata.next_cursor`, `reply_count`/`latest_reply`, tombstones).

Each change made through the helpers also queues the Events API envelope Slack would deliver for it (`events`:
`message`, `message_changed`, `message_deleted`, `member_left_channel`), for tests to deliver, drop, repeat or
reorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.connectors.live.fake_http import FakeApi, Reply, Request

BOT_USER = "UBOT"


@dataclass
class Message:
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    reactions: list[str] = field(default_factory=list)
    edited_ts: str | None = None
    subtype: str | None = None


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    members: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


class FakeSlackApi(FakeApi):
    def __init__(self, token: str = "xoxb-test-token") -> None:
        super().__init__()
        self.token = token
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, dict[str, str]] = {BOT_USER: {"name": "ragbot", "email": ""}}
        self.clock = 1_700_000_000
        self.events: list[dict[str, Any]] = []  # event_callback envelopes, in the order the changes happened

    # -- test helpers ----------------------------------------------------------------------------------------

    def now(self) -> str:
        self.clock += 10
        return f"{self.clock}.000100"

    def add_user(self, uid: str, name: str, email: str) -> None:
        self.users[uid] = {"name": name, "email": email}

    def post(self, channel: str, user: str, text: str, thread_ts: str | None = None, **kw: Any) -> Message:
        message = Message(self.now(), user, text, thread_ts, **kw)
        if thread_ts is None:
            message.thread_ts = None
        self.channels[channel].messages.append(message)
        self._event(channel, {"type": "message", **self._event_message(message)})
        return message

    def edit(self, channel: str, ts: str, text: str) -> None:
        for m in self.channels[channel].messages:
            if m.ts == ts:
                before = self._event_message(m)
                m.text, m.edited_ts = text, self.now()
                self._event(
                    channel,
                    {
                        "type": "message",
                        "subtype": "message_changed",
                        "hidden": True,
                        "ts": m.edited_ts,
                        "message": {**self._event_message(m), "edited": {"user": m.user, "ts": m.edited_ts}},
                        "previous_message": before,
                    },
                )

    def delete(self, channel: str, ts: str) -> None:
        """A parent with replies leaves a tombstone; anything else disappears."""
        chan = self.channels[channel]
        parent = next(m for m in chan.messages if m.ts == ts)
        before = self._event_message(parent)
        if any(m.thread_ts == ts for m in chan.messages):
            parent.subtype, parent.text, parent.user = "tombstone", "This message was deleted.", ""
        else:
            chan.messages.remove(parent)
        self._event(
            channel,
            {
                "type": "message",
                "subtype": "message_deleted",
                "hidden": True,
                "ts": self.now(),
                "deleted_ts": ts,
                "previous_message": before,
            },
        )

    def leave(self, channel: str, user: str) -> None:
        self.channels[channel].members.remove(user)
        chan = self.channels[channel]
        self._event(
            channel,
            {"type": "member_left_channel", "user": user, "channel_type": "G" if chan.private else "C"},
        )

    def _event_message(self, m: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
        if m.thread_ts:
            out["thread_ts"] = m.thread_ts
        return out

    def _event(self, channel: str, event: dict[str, Any]) -> None:
        """The envelope the Events API delivers (HTTP body, or Socket Mode payload) for a change."""
        chan = self.channels[channel]
        event = {"channel": channel, "channel_type": "group" if chan.private else "channel", **event}
        self.events.append(
            {
                "token": "verification-token",
                "team_id": "T1",
                "api_app_id": "A1",
                "type": "event_callback",
                "event_id": f"Ev{len(self.events) + 1:08d}",
                "event_time": self.clock,
                "event": event,
            }
        )

    # -- routes ----------------------------------------------------------------------------------------------

    def route(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(body={"ok": False, "error": "invalid_auth"})
        method = req.path.rsplit("/", 1)[-1]
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return Reply(body={"ok": False, "error": "unknown_method"})
        return handler(req)

    def _auth_test(self, req: Request) -> Reply:
        return Reply(
            body={
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user_id": BOT_USER,
                "bot_id": "BBOT",
            }
        )

    def _channel(self, req: Request) -> Channel | None:
        return self.channels.get(req.arg("channel") or "")

    def _conversations_info(self, req: Request) -> Reply:
        chan = self._channel(req)
        if chan is None:
            return Reply(body={"ok": False, "error": "channel_not_found"})
        return Reply(
            body={"ok": True, "channel": {"id": chan.id, "name": chan.name, "is_private": chan.private}}
        )

    def _users_conversations(self, req: Request) -> Reply:
        mine = [c for c in self.channels.values() if BOT_USER in c.members or not c.private]
        return self._paged(
            req, "channels", [{"id": c.id, "name": c.name, "is_private": c.private} for c in mine]
        )

    def _conversations_members(self, req: Request) -> Reply:
        chan = self._channel(req)
        return self._paged(req, "members", list(chan.members) if chan else [])

    def _users_info(self, req: Request) -> Reply:
        found = self.users.get(req.arg("user") or "")
        if found is None:
            return Reply(body={"ok": False, "error": "user_not_found"})
        return Reply(
            body={
                "ok": True,
                "user": {
                    "id": req.arg("user"),
                    "name": found["name"],
                    "profile": {"real_name": found["name"], "email": found["email"]},
                },
            }
        )

    def _conversations_history(self, req: Request) -> Reply:
        chan = self._channel(req)
        if chan is None:
            return Reply(body={"ok": False, "error": "channel_not_found"})
        oldest = float(req.arg("oldest") or 0)
        parents = [m for m in chan.messages if m.thread_ts is None and float(m.ts) > oldest]
        parents.sort(key=lambda m: float(m.ts), reverse=True)  # newest first, as Slack returns them
        return self._paged(req, "messages", [self._json(chan, m) for m in parents])

    def _conversations_replies(self, req: Request) -> Reply:
        chan = self._channel(req)
        ts = req.arg("ts")
        if chan is None:
            return Reply(body={"ok": False, "error": "channel_not_found"})
        thread = [m for m in chan.messages if m.ts == ts or m.thread_ts == ts]
        if not thread:
            return Reply(body={"ok": False, "error": "thread_not_found"})
        thread.sort(key=lambda m: float(m.ts))
        return self._paged(req, "messages", [self._json(chan, m) for m in thread])

    def _json(self, chan: Channel, m: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": m.ts, "user": m.user, "text": m.text}
        if m.subtype:
            out["subtype"] = m.subtype
        if m.user == BOT_USER:
            out["bot_id"] = "BBOT"
        if m.edited_ts:
            out["edited"] = {"user": m.user, "ts": m.edited_ts}
        if m.reactions:
            out["reactions"] = [{"name": r, "count": 1, "users": ["U1"]} for r in m.reactions]
        replies = [r for r in chan.messages if r.thread_ts == m.ts]
        if m.thread_ts:
            out["thread_ts"] = m.thread_ts
        elif replies:
            out.update(thread_ts=m.ts, reply_count=len(replies), latest_reply=max(r.ts for r in replies))
        return out

    def _paged(self, req: Request, key: str, items: list[Any]) -> Reply:
        offset = int(req.arg("cursor") or 0)
        limit = int(req.arg("limit") or 100)
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return Reply(
            body={
                "ok": True,
                key: page,
                "has_more": more,
                "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
            }
        )
