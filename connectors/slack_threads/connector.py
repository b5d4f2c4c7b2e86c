"""Threads of chosen Slack channels, one document each (question, replies, authors, permalink, date).

Each poll reads `conversations.history` since the channel's checkpoint minus `LOOKBACK` (threads there are
listed again, cheaply, 200 a request: new replies and parent edits show only on the parent) and fetches
`conversations.replies` only for threads started, replied to or edited since the checkpoint; a thread whose
parent was deleted (a tombstone) is deleted, and when a private channel's members changed (one
`conversations.members` request per private channel and poll), or a channel was made private or public, its
indexed threads get their new readers without being read again. Threads deleted without a trace go at the id
listing (every `RAG_LIVE_PRUNE_EVERY` syncs and on `--full`). A public channel's threads are visible to
everyone who may use the source; a private channel's to its members (`conversations.members`, emails by
`users.info`, kept in the checkpoint for `RAG_LIVE_PRUNE_EVERY` syncs).

With Slack's Events API recorded by the bot (`events.py`, `connectors/live_events.py`), a poll whose event log
vouches that nothing was missed reads no history: only `conversations.replies` of the threads the events named
(members are still read at every poll). Its checkpoint keeps the log position, moved by the poll's last batch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.errors import Skipped, SourceUnavailable
from connectors.live import AccessChange, Batch, Checkpoint, Listed, LiveConnector
from connectors.live_events import EventLog, Pending
from connectors.live_http import ApiClient, ApiError, credential_name, read_secret
from connectors.slack_threads.events import RECEIVER
from rag_core.permissions import PUBLIC, Access, user
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

log = logging.getLogger(__name__)

LOOKBACK_S = 7 * 24 * 3600  # a poll re-lists a week of each channel's history (new replies to recent threads)
PAGE_SIZE = 200  # messages per history request (Slack's recommended maximum)
SCOPES = "channels:history, groups:history, channels:read, groups:read, users:read, users:read.email"
# (users.conversations lists the channels the bot is in, with their privacy, in one request)
_AUTH_ERRORS = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
}


class SlackThreadsConnector(LiveConnector):
    """Threads of the configured channels."""

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        token = read_secret(config)
        self.http = ApiClient(
            config,
            settings,
            config.url or "https://slack.com/api",
            {"Authorization": f"Bearer {token}"},
            f"the scopes {SCOPES} and membership of channels {', '.join(config.channels)}",
        )
        self._team_url = ""
        self._self_ids: set[str] = set()
        self._users: dict[str, dict[str, Any]] = {}
        self._known: set[str] = set()  # users looked up successfully: kept in the checkpoint
        self._users_age = 0
        self._channels: dict[str, tuple[str, Access]] = {}
        self._names: dict[str, tuple[str, bool]] = {}  # channel id -> (name, private)
        self._events: EventLog | None = None

    @property
    def calls(self) -> int:
        return self.http.calls

    # -- the interface ---------------------------------------------------------------------------------------

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[Batch]:
        state = checkpoint or {}
        since: dict[str, float] = dict(state.get("since") or {})
        readers: dict[str, str] = dict(state.get("readers") or {})
        self._load_users(state)
        self._identity()  # the token is checked first: a refused one fails in one line naming auth.test
        pending, by_events = self._pending(state, bool(since))
        threads, whole = _hinted(pending.hints if by_events else [])
        event_polls = int(state.get("event_polls") or 0)

        def saved(final: bool) -> Checkpoint:
            # the event position moves only with the last batch: a poll cut short reads the same hints again
            events = pending.position if final else state.get("events")
            polls = (event_polls + 1 if by_events else 0) if final else event_polls
            return {
                "since": dict(since),
                "readers": dict(readers),
                **self._saved_users(),
                "events": events,
                "event_polls": polls,
            }

        for channel in self.config.channels:
            if not self._joined(channel):
                yield self._not_joined(channel, since, readers)
                yield Batch(checkpoint=saved(False))
                continue
            last = since.get(channel)
            # everyone, or a private channel's members (a failed member lookup fails the sync: checkpoint kept)
            access = self._channel(channel)[1]
            digest = _digest(access)
            if last is not None and readers.get(channel, digest) != digest:
                # members came or left, or the channel was made private (or public): only who may read its
                # threads changed, so their readers are rewritten and no thread is read again
                yield Batch(access=[AccessChange(f"{channel}:", access)])
            readers[channel] = digest
            if by_events and last is not None and channel not in whole:
                batch = self._threads_named(channel, sorted(threads.get(channel, ())))
                if batch is not None:  # else a hinted thread could not be read: list the channel instead
                    yield batch
                    yield Batch(checkpoint=saved(False))
                    continue
            oldest = None if last is None else max(last - LOOKBACK_S, 0.0)
            newest = last or 0.0
            for messages in self._history(channel, oldest):
                batch = Batch()
                for message in messages:
                    ts = float(message["ts"])
                    activity = max(
                        ts,
                        float(message.get("latest_reply") or 0),
                        float((message.get("edited") or {}).get("ts") or 0),
                    )
                    newest = max(newest, activity)
                    doc_id = f"{channel}:{message['ts']}"
                    if message.get("subtype") == "tombstone" or not self._keep(message):
                        batch.deleted.append(doc_id)  # deleted parent, or no longer passes the filters
                    elif last is None or activity > last:
                        batch.documents.append(self._thread(channel, message))
                yield batch
            since[channel] = max(newest, since.get(channel) or 0.0)
            yield Batch(checkpoint=saved(False))
        yield Batch(checkpoint=saved(True))

    def _pending(self, state: Checkpoint, loaded: bool) -> tuple[Pending, bool]:
        """The pushed hints since the last poll, and whether this poll may go by them alone: the log vouches
        that none is missing, the source was loaded, and it is not time for the reconciliation poll (every
        `RAG_LIVE_PRUNE_EVERY` polls a poll lists every channel, catching what the events did not say)."""
        if not self.settings.redis_url:
            return Pending(), False
        if self._events is None:
            self._events = EventLog(self.settings.redis_url, RECEIVER)
        pending = self._events.read(state.get("events"))
        reconcile = int(state.get("event_polls") or 0) + 1 >= self.settings.live_prune_every
        by_events = pending.complete and loaded and not reconcile
        if not by_events and loaded:
            why = pending.why or "reconciliation poll"
            log.info(
                "slack threads: listing every channel",
                extra={"event": "live_events_not_used", "source": self.config.name, "why": why},
            )
        return pending, by_events

    def _threads_named(self, channel: str, stamps: list[str]) -> Batch | None:
        """The hinted threads of a channel read again (`conversations.replies`), or deleted when they are gone;
        None when one cannot be read (the channel's history is listed instead)."""
        batch = Batch()
        for ts in stamps:
            doc_id = f"{channel}:{ts}"
            try:
                replies = self._replies(channel, ts)
            except ApiError:
                return None
            if not replies:
                batch.deleted.append(doc_id)  # thread_not_found: deleted without a trace
                continue
            parent = replies[0]
            if parent.get("ts") != ts or parent.get("thread_ts") not in (None, ts):
                continue  # the hint named a reply (a reaction on it), not a thread
            if parent.get("subtype") == "tombstone" or not self._keep(parent):
                batch.deleted.append(doc_id)
            else:
                batch.documents.append(self._thread(channel, parent, replies))
        return batch

    def list_ids(self) -> Iterator[Listed]:
        for channel in self.config.channels:
            if not self._joined(channel):
                continue  # its threads are listed nowhere: they leave the index
            access = self._channel(channel)[1]
            for messages in self._history(channel, None):
                for message in messages:
                    if message.get("subtype") != "tombstone" and self._keep(message):
                        yield Listed(f"{channel}:{message['ts']}", access)

    def fetch(self, ids: list[str]) -> Iterator[Document | Skipped]:
        for doc_id in ids:
            channel, _, ts = doc_id.partition(":")
            replies = self._replies(channel, ts)
            if replies:
                yield self._thread(channel, replies[0], replies)

    def close(self) -> None:
        self.http.close()
        if self._events is not None:
            self._events.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        """One Web API call; `ok: false` for the token or scope fails the sync in one line."""
        data: dict[str, Any] = self.http.get_json(f"/{method}", params)
        if data.get("ok"):
            return data
        error = str(data.get("error") or "unknown_error")
        if error in _AUTH_ERRORS or error in ("channel_not_found", "not_in_channel"):
            needed = f" (needs {data['needed']})" if data.get("needed") else ""
            raise SourceUnavailable(
                f"{self.config.name}: Slack refused {method} with {error}{needed} for the token in "
                f"{credential_name(self.config)}; it needs {self.http.needs}"
            )
        raise ApiError(f"{self.config.name}: Slack {method} failed: {error}")

    def _identity(self) -> None:
        if self._team_url:
            return
        data = self._call("auth.test")
        self._team_url = str(data.get("url") or "https://slack.com/").rstrip("/") + "/"
        self._self_ids = {str(v) for v in (data.get("user_id"), data.get("bot_id")) if v}

    def _history(self, channel: str, oldest: float | None) -> Iterator[list[dict[str, Any]]]:
        self._identity()
        if not self._names:
            self._list_channels()
        if channel not in self._names:
            self._channel(channel)  # fails the sync with the line saying how to fix it
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"channel": channel, "limit": PAGE_SIZE}
            if oldest is not None:
                params["oldest"] = f"{oldest:.6f}"
            if cursor:
                params["cursor"] = cursor
            data = self._call("conversations.history", **params)
            yield [
                m
                for m in data.get("messages") or []
                if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")
            ]
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def _replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"channel": channel, "ts": ts, "limit": PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            try:
                data = self._call("conversations.replies", **params)
            except ApiError as exc:
                if "thread_not_found" in str(exc):
                    return []
                raise
            found.extend(data.get("messages") or [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return found

    def _keep(self, message: dict[str, Any]) -> bool:
        if self.config.skip_bot_messages and (
            message.get("user") in self._self_ids or message.get("bot_id") in self._self_ids
        ):
            return False
        if int(message.get("reply_count") or 0) < self.config.min_replies:
            return False
        if self.config.reaction:
            return any(r.get("name") == self.config.reaction for r in message.get("reactions") or [])
        return True

    def _joined(self, channel: str) -> bool:
        """Whether the bot is in the channel (`users.conversations`, read once a sync)."""
        if not self._names:
            self._list_channels()
        return channel in self._names

    def _not_joined(self, channel: str, since: dict[str, float], readers: dict[str, str]) -> Batch:
        """A configured channel the bot is not (or no longer) in. Removing the bot means "stop using it": its
        threads are read by nobody from this sync on and leave the index at the next id listing; the other
        channels go on; invited back, it is read again whole (its checkpoint goes)."""
        log.warning(
            "slack threads: the bot is not in a configured channel; its threads are hidden",
            extra={"event": "slack_channel_not_joined", "source": self.config.name, "channel": channel},
        )
        since.pop(channel, None)
        readers.pop(channel, None)
        return Batch(
            documents=[
                Skipped(
                    f"#{channel}",
                    f"the bot is not in channel {channel}: its threads are hidden and leave the index at the "
                    "next id listing; invite the bot to the channel to index them again",
                )
            ],
            access=[AccessChange(f"{channel}:", Access.only(()))],
        )

    def _channel(self, channel: str) -> tuple[str, Access]:
        """The channel's name and who may read its threads (members of a private one), looked up when needed."""
        if not self._joined(channel):
            raise SourceUnavailable(
                f"{self.config.name}: channel {channel} is not visible to the token in "
                f"{credential_name(self.config)}; invite the bot to it (it needs {self.http.needs})"
            )
        if channel not in self._channels:
            name, private = self._names[channel]
            access = PUBLIC
            if private:
                emails = {self._user(member).get("email") for member in self._members(channel)}
                access = Access.only(user(e) for e in emails if e)
            self._channels[channel] = (name, access)
        return self._channels[channel]

    def _list_channels(self) -> None:
        """Names and privacy of every channel the bot is in: `users.conversations`, 1,000 a request."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"types": "public_channel,private_channel", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            data = self._call("users.conversations", **params)
            for info in data.get("channels") or []:
                self._names[str(info["id"])] = (
                    str(info.get("name") or info["id"]),
                    bool(info.get("is_private")),
                )
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def _members(self, channel: str) -> Iterator[str]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"channel": channel, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            data = self._call("conversations.members", **params)
            yield from data.get("members") or []
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def _user(self, user_id: str) -> dict[str, Any]:
        """A user's name and email (kept in the checkpoint for `RAG_LIVE_PRUNE_EVERY` syncs, see `_load_users`)."""
        if user_id not in self._users:
            try:
                found = self._call("users.info", user=user_id).get("user") or {}
                self._known.add(user_id)
            except ApiError:
                found = {}  # this sync only: without an email the user reads no private thread
            profile = found.get("profile") or {}
            self._users[user_id] = {
                "name": profile.get("real_name")
                or profile.get("display_name")
                or found.get("name")
                or user_id,
                "email": profile.get("email"),
            }
        return self._users[user_id]

    def _load_users(self, checkpoint: Checkpoint) -> None:
        """Names and emails looked up by earlier polls, unless they are `RAG_LIVE_PRUNE_EVERY` polls old: then
        every user is looked up again (a changed email reaches private threads' readers within that many syncs)."""
        age = int(checkpoint.get("users_age") or 0) + 1
        cached = checkpoint.get("users") or {}
        if age >= self.settings.live_prune_every or not isinstance(cached, dict):
            self._users_age = 0
            return
        self._users_age = age
        for user_id, (name, email) in cached.items():
            self._users.setdefault(user_id, {"name": name, "email": email})
            self._known.add(user_id)

    def _saved_users(self) -> dict[str, Any]:
        known = {u: [self._users[u]["name"], self._users[u]["email"]] for u in sorted(self._known)}
        return {"users": known, "users_age": self._users_age}

    def _thread(
        self, channel: str, parent: dict[str, Any], replies: list[dict[str, Any]] | None = None
    ) -> Document | Skipped:
        doc_id = f"{channel}:{parent['ts']}"
        name, access = self._channel(channel)
        try:
            if replies is None:
                replies = (
                    self._replies(channel, parent["ts"]) if int(parent.get("reply_count") or 0) else [parent]
                )
        except ApiError as exc:
            return Skipped(f"#{name}/{parent['ts']}", str(exc), doc_id=doc_id)
        messages = [
            m
            for m in replies or [parent]
            if not (
                self.config.skip_bot_messages
                and (m.get("user") in self._self_ids or m.get("bot_id") in self._self_ids)
            )
            and m.get("subtype") not in ("tombstone", "channel_join", "channel_leave")
        ]
        if not messages:
            return Skipped(f"#{name}/{parent['ts']}", "no messages left in the thread", doc_id=doc_id)
        lines = []
        for m in messages:
            who = self._user(m["user"])["name"] if m.get("user") else m.get("username") or "bot"
            lines.append(f"**{who}** ({_date(m['ts']).strftime('%Y-%m-%d %H:%M')}): {m.get('text') or ''}")
        first = (messages[0].get("text") or "").strip().splitlines()[0:1] or [""]
        title = first[0][:80] or f"Thread in #{name}"
        return Document(
            id=doc_id,
            source=self.config.name,
            title=title,
            text="\n\n".join(lines),
            url=f"{self._team_url}archives/{channel}/p{str(parent['ts']).replace('.', '')}",
            breadcrumb=[f"#{name}"],
            author=self._user(parent["user"])["name"] if parent.get("user") else None,
            modified=_date(str(max(float(m["ts"]) for m in messages))),
            size=sum(len((m.get("text") or "").encode()) for m in messages),
            access=access,
        )


def _digest(access: Access) -> str:
    """A short fingerprint of who may read a channel, kept in the checkpoint to notice member changes."""
    return hashlib.sha256("\n".join(access.readers()).encode()).hexdigest()[:16]


def _date(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def _hinted(hints: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Hints split into threads by channel (`C1:ts`) and whole channels (`C1`)."""
    threads: dict[str, set[str]] = {}
    whole: set[str] = set()
    for hint in hints:
        channel, sep, ts = hint.partition(":")
        if sep:
            threads.setdefault(channel, set()).add(ts)
        else:
            whole.add(channel)
    return threads, whole
