"""One port for everything: probes, Slack HTTP mode and the API behind one front door, each part only when
mounted, one body cap per part, TCP_NODELAY on every connection, and the old port settings as aliases."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.api.app import build_context, create_app
from bot.api.settings import load_tokens
from bot.front_door import FrontDoor, front_door_port
from bot.settings import BotSettings
from rag_core.feedback.serving import ThreadedServer, listen
from rag_core.kv import MemoryKV

TOKEN = "front-door-token-0123456789"


async def fake_slack(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for Slack's part (tested in tests/bot/slack/test_http_mode.py): says how much body it got."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"slack": scope["path"], "bytes": size}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


def _settings(tmp_path: Path, **values: Any) -> BotSettings:
    return BotSettings(
        _env_file=None, data_dir=tmp_path, api_tokens=json.dumps({TOKEN: {"name": "ops"}}), **values
    )


@pytest.fixture
def door(tmp_path: Path) -> Iterator[tuple[FrontDoor, str]]:
    settings = _settings(tmp_path, api_max_body_bytes=1000, slack_max_body_bytes=50_000)
    front = FrontDoor(settings)
    server = ThreadedServer(front.app)
    try:
        yield front, server.url
    finally:
        server.stop()


def test_probes_are_served_and_unmounted_parts_are_not_found(door: tuple[FrontDoor, str]) -> None:
    front, url = door
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        assert "ragbot_answers_in_flight" in client.get("/metrics").text
        assert client.post("/slack/events", content=b"{}").status_code == 404
        assert client.get("/v1/models").status_code == 404
    assert front.parts == ["probes"]


def test_slack_and_the_api_share_the_port_once_mounted_with_their_own_body_caps(
    door: tuple[FrontDoor, str], tmp_path: Path
) -> None:
    front, url = door
    settings = _settings(tmp_path, api_max_body_bytes=1000)
    ctx = build_context(settings, load_tokens(settings), MemoryKV())  # report-only API: no engine needed
    front.mount_slack(fake_slack)
    front.mount_api(create_app(ctx, limit_body=False))
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        models = client.get("/v1/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "ragbot"
        assert client.get("/healthz").json() == {"status": "ok"}  # probes stay the door's own
        slack = client.post("/slack/events", content=b"x" * 20_000)  # over the API's cap, under Slack's
        assert slack.json() == {"slack": "/slack/events", "bytes": 20_000}
        assert client.post("/slack/events", content=b"x" * 60_000).status_code == 413
        assert client.post("/v1/ask", content=b"x" * 2_000).status_code == 413
        # a chunked body (no Content-Length) is capped while it is read
        assert client.post("/v1/ask", content=iter([b"x" * 600, b"x" * 600])).status_code == 413
    assert front.parts == ["probes", "slack", "api"]


def test_every_accepted_connection_has_tcp_nodelay() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=10):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only when it sees this
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_keep_alive_requests_on_one_connection_all_get_answers(door: tuple[FrontDoor, str]) -> None:
    _, url = door
    with httpx.Client(base_url=url, timeout=30) as client:  # one pooled connection, reused
        assert all(client.get("/healthz").status_code == 200 for _ in range(20))


def test_the_old_port_settings_are_aliases_for_one_release_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bot.front_door")
    assert front_door_port(_settings(tmp_path)) == 8080
    # .env.example's values (the old defaults) are no choice: no warning
    assert front_door_port(_settings(tmp_path, api_port=8000, slack_http_port=3000, http_port=8080)) == 8080
    assert not caplog.records
    assert front_door_port(_settings(tmp_path, api_port=8001)) == 8001
    assert front_door_port(_settings(tmp_path, slack_http_port=3001)) == 3001
    assert front_door_port(_settings(tmp_path, api_port=8001, http_port=9090)) == 9090
    assert len(caplog.records) == 3
    assert "RAG_API_PORT is deprecated" in caplog.records[0].getMessage()
    assert "ignored" in caplog.records[2].getMessage()
