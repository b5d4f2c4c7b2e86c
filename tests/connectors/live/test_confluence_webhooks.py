"""Confluence Data Center webhooks: the signed bodies the fake queues for each change go through the recorder the
API's webhook route runs, into a real Redis; the next poll reads the pages they named (a restriction change at
the next poll, not the id listing). Hints only add to the poll: lost, duplicated or forged ones change nothing
the poll and the listing would not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from connectors.confluence_api.events import ConfluenceChangeRecorder, hints_of, signature
from connectors.live_events import _PREFIX
from connectors.sync import run_sync
from tests.connectors.live.fake_confluence import FakeConfluence
from tests.connectors.live.fake_http import Reply, Request
from tests.connectors.live.test_confluence_api import _token, indexed, source, wiki  # noqa: F401

SECRET = "webhook-secret-0123456789"
FLUSH_S = 30.0  # a guard: the writer thread has nothing slow to wait for here


@pytest.fixture
def hooks(redis_url: str) -> Iterator[ConfluenceChangeRecorder]:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{_PREFIX}*"):
        client.delete(key)
    recorder = ConfluenceChangeRecorder(redis_url, SECRET)
    yield recorder
    recorder.close()
    client.close()


def deliver(api: FakeConfluence, recorder: ConfluenceChangeRecorder, start: int = 0) -> int:
    for body in api.webhooks[start:]:
        assert recorder.receive(body, signature(body, SECRET)) == 204
    assert recorder.flush(FLUSH_S)  # written by the recorder's thread, as when the route calls it
    return len(api.webhooks)


def test_hints_and_signatures() -> None:
    assert hints_of({"timestamp": 1, "page": {"id": 101, "spaceKey": "ENG"}}) == ["101"]
    assert hints_of({"content": {"id": 103, "contentType": "page"}}) == ["103"]
    assert hints_of({"attachment": {"id": 9, "parent": {"id": 101}}}) == ["101"]
    assert hints_of({"space": {"key": "ENG"}}) == [] and hints_of({"comment": {"id": 5}}) == []


def test_forged_or_unreadable_bodies_are_refused_and_record_nothing(redis_url, hooks) -> None:
    body = b'{"content": {"id": 103}}'
    assert hooks.receive(body, None) == 401
    assert hooks.receive(body, signature(body, "another-secret")) == 401
    assert hooks.receive(b"not json", signature(b"not json", SECRET)) == 400
    assert hooks.receive(body, signature(body, SECRET)) == 204
    assert hooks.flush(FLUSH_S)
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(f"{_PREFIX}confluence") == 1
    client.close()


def test_a_restriction_change_is_applied_by_the_next_poll(make_engine, serve, hooks, redis_url) -> None:
    api = serve(wiki("datacenter"))
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    writer = engine.index_writer()
    run_sync(settings, writer)
    api.restrict("101", users=["lead@x.com"])  # version and lastmodified unchanged
    api.restrict("103")  # restrictions lifted: the space's readers
    deliver(api, hooks)
    before = len(api.requests)
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    searches = [r.arg("cql") or "" for r in api.requests[before:] if r.path.endswith("/content/search")]
    # one search for both named pages and the pages under them (restrictions inherit)
    assert sum("(id in (101,103) or ancestor in (101,103))" in q for q in searches) == 1
    docs = indexed(engine)
    assert docs["101"]["readers"] == ["user:lead@x.com"] and docs["103"]["readers"] == ["group:eng"]
    assert docs["102"]["readers"] == ["user:lead@x.com"]  # under 101
    assert report.permissions_changed == 3 and report.updated == 0  # readers rewritten, nothing re-embedded


def test_without_webhooks_the_change_waits_for_the_listing_and_a_page_gone_from_search_is_deleted(
    make_engine, serve, hooks, redis_url
) -> None:
    api = serve(wiki("datacenter"))
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    writer = engine.index_writer()
    run_sync(settings, writer)
    seen = deliver(api, hooks)
    api.restrict("101", users=["lead@x.com"])  # its webhook is lost
    (report,) = run_sync(settings, writer)
    assert report.ok and indexed(engine)["101"]["readers"] == [
        "group:eng"
    ]  # as without webhooks: the listing
    (report,) = run_sync(settings.model_copy(update={"live_prune_every": 1}), writer)
    assert indexed(engine)["101"]["readers"] == ["user:lead@x.com"]
    seen = len(api.webhooks)
    api.pages["102"].status = "deleted"  # purged: in no listing of the poll, but a webhook named it
    api.restrict("102")
    deliver(api, hooks, seen)
    deliver(api, hooks, seen)  # delivered twice: read once, deleted once
    (report,) = run_sync(settings, writer)
    assert report.ok and "102" not in indexed(engine) and report.deleted == 1


def test_a_poll_cut_short_reads_the_same_hints_again(make_engine, serve, hooks, redis_url) -> None:
    api = serve(wiki("datacenter"))
    engine, settings = make_engine(
        [source(api)], redis_url=redis_url, live_max_retries=0, live_batch_documents=1
    )
    writer = engine.index_writer()
    run_sync(settings, writer)
    api.restrict("101", users=["lead@x.com"])
    deliver(api, hooks)
    route, failing = api.route, [1]

    def trash_fails_once(req: Request) -> Reply:  # the trash listing, after the named pages were read
        if req.path == "/rest/api/content" and req.arg("status") == "trashed" and failing:
            failing.pop()
            return Reply(500, {"message": "injected"})
        return route(req)

    api.route = trash_fails_once
    (failed,) = run_sync(settings, writer)
    assert not failed.ok and indexed(engine)["101"]["readers"] == ["user:lead@x.com"]  # that batch committed
    before = len(api.requests)
    (report,) = run_sync(settings, writer)
    assert report.ok and indexed(engine)["101"]["readers"] == ["user:lead@x.com"]
    again = [r.arg("cql") or "" for r in api.requests[before:] if r.path.endswith("/content/search")]
    assert any("id in (101)" in q for q in again)  # the position had not moved: the hint is read again
