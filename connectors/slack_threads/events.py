"""Slack Events API payloads as change hints for the threads source (see `connectors/live_events.py`).

A thread is named `<channel>:<parent ts>` (its document id); a whole channel by its id. From the documented
`event_callback` envelopes: `message` (a new message: its `thread_ts`, or its own `ts` when it starts a
thread), `message_changed` (the edited message's `thread_ts` or `ts`), `message_deleted` (the deleted one's
`thread_ts`, or `deleted_ts`), `message_replied`; `reaction_added` / `reaction_removed` on a message (the
reaction filter reads the parent's reactions: a reaction on a reply names a ts that is not a thread, and the
poll drops it); `channel_*` / `group_*` renames, archives and deletions name the channel (its threads are listed
again). `channel_history_changed` / `group_history_changed` (bulk changes, e.g. an import) carry no channel in
Slack's documented payload: one without a channel ends the receiver's epoch, so the next poll lists every
channel. Membership events give no hint: a private channel's members are read by every poll
(`conversations.members`), so that a lost event never leaves a reader who left able to read its threads.

The recorder never waits on Redis: its hints go to a `HintWriter` (one thread, in order, bounded).
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.live_events import CLOSE_DRAIN_S, QUEUE_EVENTS, EventLog, HintWriter, Receiver

log = logging.getLogger(__name__)

RECEIVER = "slack"
_HISTORY_EVENTS = {"channel_history_changed", "group_history_changed"}
CHANNEL_EVENTS = {  # the app's manifest subscribes to these (bot/slack/manifest.yaml)
    "channel_rename",
    "channel_archive",
    "channel_unarchive",
    "channel_deleted",
    "group_rename",
    "group_archive",
    "group_unarchive",
    "group_deleted",
    *_HISTORY_EVENTS,
}


def hints_of(body: dict[str, Any]) -> list[str] | None:
    """The hints one delivered `event_callback` envelope gives (none for anything else); None when it says
    something changed that no hint can name (the next poll must list every channel)."""
    if body.get("type") != "event_callback":
        return []
    event = body.get("event") or {}
    kind = event.get("type")
    if kind == "message":
        return _message(event)
    if kind in ("reaction_added", "reaction_removed"):
        item = event.get("item") or {}
        if item.get("type") == "message" and item.get("channel") and item.get("ts"):
            return [f"{item['channel']}:{item['ts']}"]
        return []
    if kind in CHANNEL_EVENTS:
        channel = event.get("channel")
        if isinstance(channel, dict):  # channel_rename carries {id, name, created}
            channel = channel.get("id")
        if channel:
            return [str(channel)]
        return None if kind in _HISTORY_EVENTS else []
    return []


def _message(event: dict[str, Any]) -> list[str]:
    channel = event.get("channel")
    if not channel or event.get("channel_type") == "im":
        return []
    subtype = event.get("subtype")
    if subtype in ("channel_join", "channel_leave", "group_join", "group_leave"):
        return []
    if subtype == "message_changed":
        inner = event.get("message") or {}
        ts = inner.get("thread_ts") or inner.get("ts")
    elif subtype == "message_deleted":
        previous = event.get("previous_message") or {}
        ts = previous.get("thread_ts") or event.get("deleted_ts") or previous.get("ts")
    elif subtype == "message_replied":
        ts = (event.get("message") or {}).get("thread_ts")
    else:
        ts = event.get("thread_ts") or event.get("ts")
    return [f"{channel}:{ts}"] if ts else []


class SlackChangeRecorder:
    """What the Slack adapter calls with each verified envelope it receives (HTTP or Socket Mode)."""

    def __init__(self, redis_url: str, queue_events: int = QUEUE_EVENTS) -> None:
        self.receiver = Receiver(EventLog(redis_url, RECEIVER)).start()
        self.writer = HintWriter(self.receiver, queue_events)

    def __call__(self, body: dict[str, Any]) -> None:
        """Never raises nor waits on Redis (the adapter acks and answers on the same events): the hints are
        written by the writer's thread. An envelope that cannot be read ends the receiver's epoch, so the next
        poll lists every channel instead of trusting the log."""
        try:
            hints = hints_of(body)
        except (AttributeError, TypeError, ValueError, KeyError):
            log.warning(
                "slack event not understood; the next poll reads every channel",
                extra={"event": "live_events_unreadable"},
            )
            hints = None
        if hints is None:
            self.writer.restart()
        else:
            self.writer.record(hints)

    def flush(self, timeout: float) -> bool:
        """Wait until the hints of every envelope given so far are written; False if `timeout` came first."""
        return self.writer.flush(timeout)

    def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """On shutdown: what is queued gets `drain_s` to reach Redis, then the receiver stops (its epoch ends)."""
        self.writer.close(drain_s)
        self.receiver.log.close()
