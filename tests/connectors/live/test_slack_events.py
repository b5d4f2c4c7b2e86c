"""Slack threads driven by the Events API: the envelopes the fake Slack queues for each change are delivered to
the recorder the Slack adapter calls, through a real Redis; the poll reads only what they name, and falls back to
listing every channel whenever the log cannot vouch that nothing was missed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from connectors.live_events import _PREFIX, EventLog
from connectors.slack_threads.events import RECEIVER, SlackChangeRecorder, hints_of
from connectors.sync import run_sync
from tests.connectors.live.fake_slack_api import FakeSlackApi
from tests.connectors.live.receivers import HeldLog
from tests.connectors.live.test_confluence_api import indexed
from tests.connectors.live.test_slack_threads import _token, source, workspace  # noqa: F401


@pytest.fixture
def events(redis_url: str) -> Iterator[SlackChangeRecorder]:
    """A running receiver on a clean event log (this test's own keys)."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{_PREFIX}*"):
        client.delete(key)
    recorder = SlackChangeRecorder(redis_url)
    yield recorder
    recorder.close()
    client.close()


FLUSH_S = 30.0  # a guard: the writer thread has nothing slow to wait for here


def deliver(api: FakeSlackApi, recorder: SlackChangeRecorder, start: int = 0) -> int:
    for envelope in api.events[start:]:
        recorder(envelope)
    assert recorder.flush(FLUSH_S)  # written by the recorder's thread, as when the adapter calls it
    return len(api.events)


def methods(api: FakeSlackApi, start: int) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in api.requests[start:]]


def test_hints_from_the_documented_envelopes() -> None:
    def envelope(event: dict) -> dict:
        return {"type": "event_callback", "event_id": "Ev1", "event": event}

    assert hints_of(envelope({"type": "message", "channel": "C1", "ts": "1.1"})) == ["C1:1.1"]
    assert hints_of(envelope({"type": "message", "channel": "C1", "ts": "1.2", "thread_ts": "1.1"})) == [
        "C1:1.1"
    ]
    changed = {"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "9.9"}
    assert hints_of(envelope({**changed, "message": {"ts": "1.2", "thread_ts": "1.1"}})) == ["C1:1.1"]
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": "C1",
        "ts": "9.9",
        "deleted_ts": "1.3",
    }
    assert hints_of(envelope({**deleted, "previous_message": {"ts": "1.3"}})) == ["C1:1.3"]
    reaction = {"type": "reaction_added", "item": {"type": "message", "channel": "C1", "ts": "1.1"}}
    assert hints_of(envelope(reaction)) == ["C1:1.1"]
    assert hints_of(envelope({"type": "channel_rename", "channel": {"id": "C1", "name": "x"}})) == ["C1"]
    assert hints_of(envelope({"type": "group_archive", "channel": "G1"})) == ["G1"]
    # a bulk history change names no channel in Slack's documented payload: no hint can say what changed
    history = {"type": "channel_history_changed", "latest": "1.1", "ts": "2.2", "event_ts": "2.3"}
    assert hints_of(envelope(history)) is None
    assert hints_of(envelope({**history, "channel": "C1"})) == ["C1"]
    # direct messages, joins and leaves (members are read by every poll), and other envelopes say nothing
    assert hints_of(envelope({"type": "message", "channel": "D1", "channel_type": "im", "ts": "1.1"})) == []
    assert (
        hints_of(envelope({"type": "message", "subtype": "channel_join", "channel": "C1", "ts": "1"})) == []
    )
    assert hints_of({"type": "url_verification", "challenge": "x"}) == []


def test_delivered_events_are_applied_without_listing_any_channel(
    make_engine, serve, events, redis_url
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    seen = deliver(api, events)  # the workspace's messages, delivered before the load read them
    run_sync(settings, engine.index_writer())
    api.post("C1", "U1", "Thanks, that worked!", thread_ts=ts["vpn"])
    api.edit("C1", ts["lunch"], "Lunch at 13 — 🍜 anyone?")
    api.delete("C2", ts["comp"])
    new = api.post("C1", "U2", "Where is the style guide?").ts
    deliver(api, events, seen)
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    assert (report.added, report.updated, report.deleted) == (1, 2, 1), report
    called = methods(api, before)
    assert "conversations.history" not in called and called.count("conversations.replies") == 4
    docs = indexed(engine, "slack")
    assert "that worked" in docs[f"C1:{ts['vpn']}"]["text"] and "13" in docs[f"C1:{ts['lunch']}"]["text"]
    assert f"C2:{ts['comp']}" not in docs and f"C1:{new}" in docs


def test_duplicated_and_reordered_events_give_the_same_index(make_engine, serve, events, redis_url) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    seen = deliver(api, events)
    run_sync(settings, engine.index_writer())
    api.post("C1", "U1", "Second answer.", thread_ts=ts["vpn"])
    api.delete("C1", ts["lunch"])
    for envelope in reversed(api.events[seen:] * 2):  # Slack retries, and delivers in no promised order
        events(envelope)
    assert events.flush(FLUSH_S)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and (report.updated, report.deleted) == (1, 1), report
    docs = indexed(engine, "slack")
    assert "Second answer" in docs[f"C1:{ts['vpn']}"]["text"] and f"C1:{ts['lunch']}" not in docs


def test_a_lost_event_is_caught_by_the_reconciliation_poll(make_engine, serve, events, redis_url) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url, live_prune_every=2)
    writer = engine.index_writer()
    deliver(api, events)
    run_sync(settings, writer)
    api.edit("C1", ts["lunch"], "Lunch moved to 13.")  # its event never arrives
    (report,) = run_sync(settings, writer)
    assert report.ok and report.updated == 0  # nothing said it changed
    before = len(api.requests)
    (report,) = run_sync(settings, writer)  # the second poll lists every channel (RAG_LIVE_PRUNE_EVERY=2)
    assert report.ok and report.updated == 1 and "conversations.history" in methods(api, before)
    assert "13" in indexed(engine, "slack")[f"C1:{ts['lunch']}"]["text"]


@pytest.mark.parametrize(
    "gap", ["receiver restarted", "receiver stopped", "log trimmed", "redis unreachable"]
)
def test_when_the_log_cannot_vouch_for_every_event_the_poll_lists_every_channel(
    make_engine, serve, events, redis_url, gap
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    writer = engine.index_writer()
    run_sync(settings, writer)
    api.edit("C1", ts["lunch"], "Lunch moved to 13.")  # never delivered
    client = redis.Redis.from_url(redis_url)
    if gap == "receiver restarted":
        events.close()
        SlackChangeRecorder(redis_url)  # a new epoch: what arrived while none ran may be lost
    elif gap == "receiver stopped":
        events.close()
    elif gap == "log trimmed":
        stream = f"{_PREFIX}{RECEIVER}"
        client.xadd(stream, {"h": "C9:1.1"})
        client.xadd(stream, {"h": "C9:1.2"})
        client.xtrim(stream, maxlen=0)
    else:
        settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    before = len(api.requests)
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    assert methods(api, before).count("conversations.history") == 2 and report.updated == 1
    client.close()


def test_a_member_who_left_loses_access_at_the_next_poll_even_when_the_event_is_lost(
    make_engine, serve, events, redis_url
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    deliver(api, events)
    run_sync(settings, engine.index_writer())
    api.leave("C2", "U2")  # member_left_channel: not delivered
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and indexed(engine, "slack")[f"C2:{ts['comp']}"]["readers"] == ["user:ada@x.com"]


def test_a_poll_cut_short_reads_the_same_hints_again(make_engine, serve, events, redis_url) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], redis_url=redis_url, live_batch_documents=1)
    writer = engine.index_writer()
    seen = deliver(api, events)
    run_sync(settings, writer)
    api.post("C1", "U1", "Another answer.", thread_ts=ts["vpn"])
    api.post("C2", "U2", "Moved to April.", thread_ts=ts["comp"])
    deliver(api, events, seen)
    api.fail("conversations.members", 200, {"ok": False, "error": "internal_error"})  # C2, after C1's commit
    (failed,) = run_sync(settings, writer)
    assert not failed.ok
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    docs = indexed(engine, "slack")
    assert "Another answer" in docs[f"C1:{ts['vpn']}"]["text"] and "April" in docs[f"C2:{ts['comp']}"]["text"]


def test_a_failed_write_of_hints_ends_the_epoch(redis_url, events) -> None:
    log = EventLog(redis_url, RECEIVER)
    position = log.read(None).position
    events.receiver.log = EventLog("redis://127.0.0.1:1/0", RECEIVER)  # Redis gone for the receiver
    events({"type": "event_callback", "event": {"type": "message", "channel": "C1", "ts": "1.1"}})
    assert events.flush(FLUSH_S)
    events.receiver.log = log
    events.receiver._beat()  # Redis back: the receiver now speaks under a new epoch
    pending = log.read(position)
    assert not pending.complete and "restarted" in pending.why
    log.close()


def test_after_a_failed_write_no_hint_is_written_under_the_old_epoch(redis_url, events) -> None:
    """Redis comes back before the next heartbeat: the next event writes the new epoch before its hints, so a
    poll never trusts the log across the hint that was lost (the old epoch's key outlives the outage)."""
    log = EventLog(redis_url, RECEIVER)
    position = log.read(None).position
    events.receiver.log = EventLog("redis://127.0.0.1:1/0", RECEIVER)  # Redis gone for the receiver
    events({"type": "event_callback", "event": {"type": "message", "channel": "C1", "ts": "1.1"}})  # lost
    assert events.flush(FLUSH_S)
    events.receiver.log = log  # Redis back; no heartbeat has run yet
    events({"type": "event_callback", "event": {"type": "message", "channel": "C2", "ts": "2.2"}})
    assert events.flush(FLUSH_S)
    pending = log.read(position)
    assert not pending.complete and "restarted" in pending.why
    log.close()


def test_an_envelope_that_cannot_be_read_ends_the_epoch_and_does_not_raise(redis_url, events) -> None:
    log = EventLog(redis_url, RECEIVER)
    position = log.read(None).position
    events({"type": "event_callback", "event": ["not", "an", "event"]})  # the adapter keeps answering
    assert events.flush(FLUSH_S)
    pending = log.read(position)
    assert not pending.complete and "restarted" in pending.why
    log.close()


def test_a_history_change_naming_no_channel_ends_the_epoch(redis_url, events) -> None:
    log = EventLog(redis_url, RECEIVER)
    position = log.read(None).position
    events(
        {"type": "event_callback", "event": {"type": "group_history_changed", "latest": "1.1", "ts": "2.2"}}
    )
    assert events.flush(FLUSH_S)
    pending = log.read(position)
    assert not pending.complete and "restarted" in pending.why
    log.close()


def message(ts: str) -> dict:
    return {"type": "event_callback", "event": {"type": "message", "channel": "C1", "ts": ts}}


def written(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [fields[b"h"].decode() for _, fields in client.xrange(f"{_PREFIX}{RECEIVER}")]
    finally:
        client.close()


def test_while_redis_hangs_events_queue_in_order_and_a_full_queue_ends_the_epoch(
    redis_url, caplog: pytest.LogCaptureFixture
) -> None:
    """The adapter's calls return while a write hangs; past the queue's bound events are dropped with one log
    line, the epoch ends before any later hint is written, and the hints after that are trusted again."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{_PREFIX}*"):
        client.delete(key)
    client.close()
    recorder = SlackChangeRecorder(redis_url, queue_events=2)
    log = EventLog(redis_url, RECEIVER)
    held = HeldLog(redis_url, RECEIVER, FLUSH_S)
    try:
        position = log.read(None).position
        recorder.receiver.log = held
        recorder(message("1.1"))
        assert held.entered.wait(FLUSH_S)  # the writer hangs on 1.1
        with caplog.at_level(logging.WARNING, logger="connectors.live_events"):
            for ts in ("2.2", "3.3", "4.4", "5.5"):  # 2.2 and 3.3 fill the queue; 4.4 and 5.5 are dropped
                recorder(message(ts))
        dropped = [r for r in caplog.records if getattr(r, "event", None) == "live_events_dropped"]
        assert len(dropped) == 1 and getattr(dropped[0], "receiver", None) == RECEIVER
        held.release.set()
        assert recorder.flush(FLUSH_S)
        assert written(redis_url) == ["C1:1.1", "C1:2.2", "C1:3.3"]
        pending = log.read(position)
        assert not pending.complete and "restarted" in pending.why  # no poll trusts the log across the drop
        recorder(message("6.6"))
        assert recorder.flush(FLUSH_S)
        after = log.read(pending.position)
        assert after.complete and after.hints == ["C1:6.6"]  # the new epoch was written before 6.6
    finally:
        held.release.set()
        recorder.close()
        log.close()
        held.close()


def test_close_writes_what_is_queued_then_ends_the_epoch(redis_url, events) -> None:
    log = EventLog(redis_url, RECEIVER)
    assert log.read(None).position is not None
    events(message("1.1"))
    events.close(drain_s=FLUSH_S)
    assert written(redis_url) == ["C1:1.1"]
    pending = log.read(None)
    assert pending.position is None and "no event receiver" in pending.why
    assert not events.writer._thread.is_alive()
    log.close()
