"""Change hints a source pushes (Slack's Events API), kept in Redis for the poll that applies them.

The receiver (the chat adapter that gets the source's events) turns each event into hints, the connector's own
words for what changed (`C123:1700000000.000100`, a thread; `C123`, a whole channel), and appends them to a
Redis stream per receiver. The poll reads the hints after the position its checkpoint stored, and fetches only
what they name, instead of listing everything.

A poll may trust the hints only when nothing can have been missed since that position (`Pending.complete`):

- a receiver is running: it refreshes `…:receiver:<name>` (its epoch, a random id) every `HEARTBEAT_S`, which
  expires after `ALIVE_TTL_S` (the bot stopped, or Redis lost the key: events are not flowing);
- it is the receiver that was running at the stored position (same epoch: a restart may have lost events that
  arrived while it was down, or that Slack gave up retrying);
- the stream still holds every entry added after the position (the position keeps the stream's
  `entries-added` count, Redis 7: fewer entries after it than were added since means trimmed past it, at
  `MAX_EVENTS` entries, and lost);
- Redis answers.

Otherwise the poll reads everything, as without events, and stores the position it took before reading (events
arriving during that poll are read again by the next one: a hint applied twice costs a request, never a change).
Events lost with all of the above intact (Slack disabling a failing Request URL, a Socket Mode connection down
while the process lives) are caught by the reconciliation poll every `RAG_LIVE_PRUNE_EVERY` syncs.

A receiver that must never wait on Redis (the Slack adapter, which acks and answers on the same events) hands
its hints to a `HintWriter`: one thread writes them in order; if Redis is stuck so long that its queue fills,
hints are dropped and the epoch ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import redis

log = logging.getLogger(__name__)

HEARTBEAT_S = 60.0  # the receiver says it is alive this often
RETRY_S = 1.0  # and this often while a new epoch is not written yet (Redis was down when it began)
ALIVE_TTL_S = 180.0  # and is taken for gone after this long without a word
MAX_EVENTS = 100_000  # hints kept per receiver (~10 MB); a poll further behind reads everything
QUEUE_EVENTS = 10_000  # events a HintWriter holds while Redis is slow; more are dropped (the epoch ends)
CLOSE_DRAIN_S = 2.0  # what a HintWriter still holds gets this long to reach Redis when it closes
_PREFIX = "ragbot:live_events:"


@dataclass(frozen=True)
class Pending:
    """Hints after a stored position: what a poll may trust, and the position to store once it is applied."""

    hints: list[str] = field(default_factory=list)
    position: str | None = None  # None: no event log (store nothing)
    complete: bool = False  # every change since the stored position is among `hints`
    why: str = ""  # why not complete, for the log line


def _warn(message: str, event: str, receiver: str, exc: Exception) -> None:
    """One line for a Redis failure: which receiver, the error's type (never its text: it may hold the URL)."""
    log.warning(message, extra={"event": event, "receiver": receiver, "error": type(exc).__name__})


def _stream(receiver: str) -> str:
    return f"{_PREFIX}{receiver}"


def _alive_key(receiver: str) -> str:
    return f"{_PREFIX}receiver:{receiver}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _position(since: str | None) -> tuple[str | None, str, int | None]:
    """A stored position: (receiver epoch, last entry id read, entries the stream had ever had then)."""
    if not since:
        return None, "0-0", None
    parts = since.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None, "0-0", None  # not one of ours: read everything
    return parts[0], parts[1], int(parts[2])


class EventLog:
    """One receiver's hints in a Redis stream (`XADD … MAXLEN ~`), read by position."""

    def __init__(self, redis_url: str, receiver: str) -> None:
        self.receiver = receiver
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)

    # -- the receiver's side -------------------------------------------------------------------------------------

    def add(self, hints: Iterable[str]) -> None:
        """Append hints (one entry each). A Redis failure is logged and the hints are lost: the next poll then
        finds the receiver's epoch unchanged, so a lost write must not pass silently (see `Receiver.record`)."""
        pipe = self._redis.pipeline(transaction=False)
        for hint in hints:
            pipe.xadd(_stream(self.receiver), {"h": hint}, maxlen=MAX_EVENTS, approximate=True)
        pipe.execute()

    def alive(self, epoch: str) -> None:
        self._redis.set(_alive_key(self.receiver), epoch, ex=int(ALIVE_TTL_S))

    def gone(self, epoch: str) -> None:
        """The receiver stops (or lost a write): its epoch ends, so no poll trusts the log across the gap."""
        key = _alive_key(self.receiver)
        if self._redis.get(key) == epoch.encode():
            self._redis.delete(key)

    # -- the poll's side -------------------------------------------------------------------------------------

    def read(self, since: str | None) -> Pending:
        """The hints after `since` (a position this method returned), and whether they are all there is."""
        try:
            return self._read(since)
        except redis.RedisError as exc:
            _warn(
                "live event log unreachable; polling everything",
                "live_events_unreachable",
                self.receiver,
                exc,
            )
            return Pending(position=since, why="the event log is unreachable")

    def _read(self, since: str | None) -> Pending:
        raw = self._redis.get(_alive_key(self.receiver))
        epoch = _text(raw) if raw else None
        was_epoch, was_id, was_added = _position(since)
        # the stream's counters and the entries after the position, read in one transaction (consistent)
        pipe = self._redis.pipeline(transaction=True)
        pipe.xinfo_stream(_stream(self.receiver))
        pipe.xrange(_stream(self.receiver), min=f"({was_id}" if was_id != "0-0" else "-")
        info, entries = pipe.execute(raise_on_error=False)
        if isinstance(entries, Exception):
            raise entries
        if isinstance(info, redis.ResponseError):  # no stream yet: nothing was ever added
            added, head = 0, "0-0"
        elif isinstance(info, Exception):
            raise info
        else:
            added = int(info.get("entries-added") or 0)
            head = _text(info.get("last-generated-id") or "0-0")
        if epoch is None:
            return Pending(position=None, why="no event receiver is running")
        here = f"{epoch}/{head}/{added}"
        if since is None:
            return Pending(position=here, why="no position stored yet")
        if was_epoch != epoch:
            return Pending(position=here, why="the event receiver restarted since the last poll")
        if was_added is None or len(entries) < added - was_added:
            # fewer entries after the position than were added since: the stream was trimmed past it
            return Pending(position=here, why="the event log was trimmed past the last poll")
        hints = [fields[b"h"].decode() for _, fields in entries if b"h" in fields]
        return Pending(hints=hints, position=here, complete=True)

    def close(self) -> None:
        self._redis.close()


class Receiver:
    """The chat adapter's half: an epoch, a heartbeat thread, and `record(hints)` for each event it gets."""

    def __init__(self, log_: EventLog) -> None:
        self.log = log_
        self.epoch = uuid.uuid4().hex
        self._unwritten = False  # the epoch is not in Redis yet: a poll may still see the one before it
        self._stop = threading.Event()
        # The epoch and its key change together: a heartbeat must not write back an epoch a restart just ended,
        # nor a late one bring back the key `stop` removed.
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        self._beat()
        self._thread = threading.Thread(
            target=self._run, name=f"live-events-{self.log.receiver}", daemon=True
        )
        self._thread.start()
        return self

    def record(self, hints: list[str]) -> None:
        """Append the hints; if that fails the epoch is ended, so the next poll reads everything. A new epoch is
        written before any later hint: hints under the old one would let a poll trust a log with a gap."""
        if not hints:
            return
        if self._unwritten and not self._beat():
            return  # Redis is still down: these are lost too, and the new epoch already says so
        try:
            self.log.add(hints)
        except redis.RedisError as exc:
            _warn(
                "live event hints not recorded; the next poll reads everything",
                "live_events_lost",
                self.log.receiver,
                exc,
            )
            self.restart()

    def restart(self) -> None:
        """A new epoch: no poll trusts the log across something this receiver may have lost."""
        with self._lock:
            self.epoch = uuid.uuid4().hex
            self._beat()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            with contextlib.suppress(redis.RedisError):  # else the key expires by itself
                self.log.gone(self.epoch)

    def _beat(self) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            try:
                self.log.alive(self.epoch)
                self._unwritten = False
                return True
            except redis.RedisError as exc:
                self._unwritten = True
                _warn("live event receiver heartbeat failed", "live_events_heartbeat", self.log.receiver, exc)
                return False

    def _run(self) -> None:
        while not self._stop.wait(RETRY_S if self._unwritten else HEARTBEAT_S):
            self._beat()


_RESTART = object()  # queued by HintWriter.restart
_STOP = object()  # queued by HintWriter.close


class HintWriter:
    """A receiver written from one daemon thread, so that its caller never waits on Redis: hints are written in
    the order given. When Redis is stuck so long that `size` events wait, later ones are dropped (one log line
    until the writer catches up) and the receiver's epoch ends before any hint after them is written."""

    def __init__(self, receiver: Receiver, size: int = QUEUE_EVENTS) -> None:
        self.receiver = receiver
        self._queue: queue.Queue[object] = queue.Queue(maxsize=size)
        self._lock = threading.Lock()
        self._dropped = False  # something was dropped: restart before writing anything else
        self._warned = False  # the drop was logged: once until the queue is empty again
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"live-events-writer-{receiver.log.receiver}", daemon=True
        )
        self._thread.start()

    def record(self, hints: list[str]) -> None:
        """Queue the hints to be written; returns at once."""
        if hints:
            self._put(hints)

    def restart(self) -> None:
        """Queue a new epoch (`Receiver.restart`): hints queued after it are written under it."""
        self._put(_RESTART)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call is written (or given up); False if `timeout` came
        first."""
        deadline = time.monotonic() + timeout
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """Give what is queued `drain_s` to reach Redis, then stop the thread and the receiver: its epoch ends,
        so no poll trusts the log across hints still queued."""
        if self._closing.is_set():
            return
        deadline = time.monotonic() + drain_s
        self.flush(drain_s)
        self._closing.set()  # the writer skips whatever is still queued
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self.receiver.stop()

    def _put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
            return
        except queue.Full:
            pass
        with self._lock:
            self._dropped = True
            warn, self._warned = not self._warned, True
        if warn:
            log.warning(
                "live event hints dropped: Redis is too slow; the next poll reads everything",
                extra={
                    "event": "live_events_dropped",
                    "receiver": self.receiver.log.receiver,
                    "queue_size": self._queue.maxsize,
                },
            )
        # Wakes the writer for the restart even if it emptied the queue since put_nowait failed; when the queue is
        # still full, the writer takes an item after `_dropped` was set, and restarts first.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_RESTART)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            with self._lock:
                restart, self._dropped = self._dropped or item is _RESTART, False
                if self._queue.empty():  # caught up: a later drop is news again
                    self._warned = False
            try:
                if not self._closing.is_set():
                    if restart:
                        self.receiver.restart()
                    if isinstance(item, list):
                        self.receiver.record(item)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure; the epoch then ends
                _warn("live event hints not recorded", "live_events_lost", self.receiver.log.receiver, exc)
                with self._lock:
                    self._dropped = True
            finally:
                if isinstance(item, threading.Event):
                    item.set()  # a flush waits for this


class _Closes(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=_Closes)


@contextlib.asynccontextmanager
async def recording(make: Callable[[], R | None]) -> AsyncIterator[R | None]:
    """A receiver's recorder (`make` may give none) for as long as its chat adapter or API serves; closed when it
    stops (queued hints get a moment to reach Redis, then the receiver's epoch ends). Both run in a thread: Redis
    may be slow."""
    recorder = await asyncio.to_thread(make)
    try:
        yield recorder
    finally:
        if recorder is not None:
            await asyncio.to_thread(recorder.close)
