"""Confluence Cloud's Forge relay (deploy/confluence-forge): the app's own JavaScript, run by Node, posts the
events Forge would hand it to the API's real webhook route over HTTP; the next Cloud poll reads the pages they
named and the pages under them. Failures are one line each and lose nothing the id listing would not find."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.api.server import ApiServer
from bot.settings import BotSettings
from connectors.confluence_api.events import ConfluenceChangeRecorder
from connectors.live_events import _PREFIX
from connectors.sync import run_sync
from tests.conftest import ROOT
from tests.connectors.live.test_confluence_api import _token, indexed, source, wiki  # noqa: F401
from tests.connectors.live.test_confluence_webhook_route import webhook_app

RELAY = ROOT / "deploy" / "confluence-forge" / "src" / "relay.js"
SECRET = "forge-relay-secret-0123456789"
GUARD_S = 30.0  # fails a test that would otherwise hang
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed: the Forge relay is JavaScript"
)

# Runs relay.js as Forge would call it, once per event, with Node's own fetch; the secret comes on stdin.
DRIVER = """
const { relayEvent } = require(process.argv[1]);
let input = '';
process.stdin.on('data', (d) => (input += d)).on('end', async () => {
  const { events, url, secret } = JSON.parse(input);
  const lines = [];
  const log = { error: (m) => lines.push(m), warn: (m) => lines.push(m) };
  const delivered = [];
  for (const event of events) delivered.push(await relayEvent(event, { fetch, url, secret, log }));
  process.stdout.write(JSON.stringify({ delivered, lines }));
});
"""


def relay(events: list[dict[str, Any]], url: str, secret: str | None) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", DRIVER, str(RELAY)],
        input=json.dumps({"events": events, "url": url, "secret": secret}),
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=True,
    )
    return dict(json.loads(done.stdout))


@pytest.fixture
def route(redis_url: str, tmp_path) -> Iterator[tuple[str, ConfluenceChangeRecorder]]:
    """`POST /webhooks/confluence` served over HTTP by uvicorn, with its real recorder and Redis."""
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{_PREFIX}confluence")
    client.close()
    settings = BotSettings(
        _env_file=None, data_dir=tmp_path, redis_url=redis_url, confluence_webhook_secret=SECRET
    )
    app = webhook_app(settings)
    recorder = app.state.confluence_webhooks
    assert recorder is not None
    server = ApiServer(app)
    try:
        yield f"{server.url}/webhooks/confluence", recorder
    finally:
        server.stop()
        recorder.close()


def test_a_cloud_restriction_change_relayed_by_forge_is_applied_by_the_next_poll(
    make_engine, serve, route, redis_url
) -> None:
    url, recorder = route
    api = serve(wiki("cloud"))
    engine, settings = make_engine([source(api)], redis_url=redis_url)
    writer = engine.index_writer()
    run_sync(settings, writer)
    assert indexed(engine)["102"]["readers"] == ["group:eng"]
    api.restrict("101", users=["lead@x.com"])  # 102 is under 101; neither page's lastmodified moves
    assert [e["eventType"] for e in api.forge_events] == ["avi:confluence:permissions_updated:page"]
    assert relay(api.forge_events, url, SECRET) == {"delivered": [True], "lines": []}
    assert recorder.flush(GUARD_S)
    before = len(api.requests)
    (poll,) = run_sync(settings, writer)  # a poll, not the id listing
    assert poll.ok, poll.error
    searches = [r.arg("cql") or "" for r in api.requests[before:] if r.path.endswith("/content/search")]
    assert sum("(id in (101) or ancestor in (101))" in q for q in searches) == 1
    docs = indexed(engine)
    assert docs["101"]["readers"] == docs["102"]["readers"] == ["user:lead@x.com"]
    assert (poll.permissions_changed, poll.updated) == (2, 0)


def test_relay_failures_are_one_line_each_and_never_carry_the_secret(route, redis_url) -> None:
    url, recorder = route
    event = {"eventType": "avi:confluence:permissions_updated:page", "content": {"id": "101", "type": "page"}}
    wrong = relay([event], url, "not-the-secret")
    assert wrong["delivered"] == [False]
    assert wrong["lines"] == ["ragbot relay: avi:confluence:permissions_updated:page refused, HTTP 401"]
    unset = relay([event], url, None)
    assert (
        unset["delivered"] == [False] and len(unset["lines"]) == 1 and "must both be set" in unset["lines"][0]
    )
    down = relay([event], "http://127.0.0.1:9/webhooks/confluence", SECRET)  # nothing listens on port 9
    assert down["delivered"] == [False] and len(down["lines"]) == 1 and "not delivered" in down["lines"][0]
    nameless = relay([{"eventType": "avi:confluence:moved:page", "content": {}}], url, SECRET)
    assert nameless == {"delivered": [False], "lines": []}  # nothing to name, nothing sent
    for lines in (wrong["lines"], unset["lines"], down["lines"]):
        assert not any(SECRET in line or "not-the-secret" in line or '"content"' in line for line in lines)
    assert recorder.flush(GUARD_S)
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(f"{_PREFIX}confluence") == 0  # the refused one recorded nothing
    client.close()
