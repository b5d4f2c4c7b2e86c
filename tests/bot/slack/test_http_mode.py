"""HTTP (Events API) mode's front door: bad signatures get 401, malformed signed bodies 400, big bodies 413, each
logged as one line without the body; empty bodies and events nobody listens to are acknowledged with 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler

from tests.bot.slack.conftest import SIGNING_SECRET, SlackBot, make_bot
from tests.bot.slack.fake_slack import event_callback, mention

MARKER = "SECRET-BODY-MARKER"


def sign(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (the SDK's helper only signs UTF-8 text)."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post(bot: SlackBot, body: bytes, content_type: str, headers: dict[str, str]) -> httpx.Response:
    return await bot.http.post(
        "/slack/events", content=body, headers={"Content-Type": content_type, **headers}
    )


def no_tracebacks_or_bodies(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]
    assert MARKER not in caplog.text


@pytest.fixture
async def small_cap_bot(small_engine, tmp_path, clean_redis) -> AsyncIterator[SlackBot]:
    async with make_bot(small_engine, tmp_path, clean_redis, slack_max_body_bytes=4096) as b:
        yield b


async def test_unsigned_or_badly_signed_requests_get_401(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(event_callback(mention(f"hello {MARKER}", ts="100.000100"))).encode()
    good = sign(body)
    cases = {
        "no headers": {},
        "timestamp abc": {**good, "X-Slack-Request-Timestamp": "abc"},
        "empty timestamp": {**good, "X-Slack-Request-Timestamp": ""},
        "forged": {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        "stale": sign(body, str(int(time.time()) - 600)),
        "no signature": {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]},
    }
    with caplog.at_level(logging.DEBUG):
        for name, headers in cases.items():
            resp = await post(bot, body, "application/json", headers)
            assert resp.status_code == 401, name
    rejections = [r for r in caplog.records if getattr(r, "event", None) == "slack_request_rejected"]
    assert len(rejections) == len(cases)
    assert all(r.status == 401 and r.bytes == len(body) and r.reason for r in rejections)
    no_tracebacks_or_bodies(caplog)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"type": "event_callback", "event": ', "application/json"),
        (b'{"type": "event_callback"} \xff\xfe', "application/json"),
        (b"\xff\xfe payload=x", "application/x-www-form-urlencoded"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b'"just a string"', "application/json"),
        (b"payload=%7Bbad", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
        (b'{"type": "event_callback", "event": "app_mention"}', "application/json"),
    ],
    ids=[
        "broken-json",
        "non-utf8-json",
        "non-utf8-form",
        "array",
        "null",
        "string",
        "bad-payload",
        "array-payload",
        "event-not-object",
    ],
)
async def test_malformed_signed_bodies_get_400_with_a_short_json_error(
    bot: SlackBot, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        resp = await post(bot, body, content_type, sign(body))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert isinstance(error, str) and 0 < len(error) < 80
    no_tracebacks_or_bodies(caplog)
    assert "Traceback" not in caplog.text


async def test_bodies_over_the_cap_get_413_without_being_read_whole(
    small_cap_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot = small_cap_bot
    big = (MARKER * 2000).encode()  # unsigned: the size check comes first
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 1000):
            sent.append(i)
            yield big[i : i + 1000]

    with caplog.at_level(logging.DEBUG):
        declared = await post(bot, big, "application/json", {})
        streamed = await bot.http.post(
            "/slack/events", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert declared.status_code == 413 and streamed.status_code == 413
    assert len(sent) <= 6  # reading stopped just past the 4,096-byte cap
    rejections = [r for r in caplog.records if getattr(r, "event", None) == "slack_request_rejected"]
    assert [r.status for r in rejections] == [413, 413]
    assert rejections[0].bytes == len(big) and rejections[1].bytes > 4096
    no_tracebacks_or_bodies(caplog)


async def test_a_large_unsigned_body_is_never_logged(bot: SlackBot, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"type": "event_callback", "text": MARKER * 5000}).encode()
    # Bolt copies the root level when the app is built; in production that is INFO (rag_core.logs).
    bolt_logger = logging.getLogger("slack_bolt.RequestVerification")
    bolt_logger.setLevel(logging.INFO)
    with caplog.at_level(logging.DEBUG):
        resp = await post(bot, body, "application/json", {"X-Slack-Signature": "v0=bad"})
        # Even Bolt's own check, reached without the front door, keeps the body out of its log line.
        bare = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=AsyncSlackRequestHandler(bot.app)), base_url="http://x"
        )
        async with bare:
            direct = await bare.post(
                "/slack/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": str(int(time.time())),
                },
            )
    assert resp.status_code == 401 and direct.status_code == 401
    no_tracebacks_or_bodies(caplog)


async def test_empty_bodies_and_unknown_events_are_acknowledged_and_ignored(bot: SlackBot) -> None:
    unknown_event = json.dumps(event_callback({"type": "team_rename", "name": "x"})).encode()
    unknown_type = json.dumps({"type": "something_new", "team_id": "T0001"}).encode()
    for body in (b"", unknown_event, unknown_type):
        resp = await post(bot, body, "application/json", sign(body))
        assert resp.status_code == 200, body
    assert not [c for c in bot.fake.calls if c.method != "auth.test"]
