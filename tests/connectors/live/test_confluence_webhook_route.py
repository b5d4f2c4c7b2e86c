"""The API's webhook route (bot/api/webhooks.py) with a real recorder and Redis: signed bodies recorded, others
refused, and no route at all without a secret. Answering never waits on Redis, and the API service closes the
recorder when it stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

import bot.api.server as api_server
from bot.api import webhooks
from bot.api.server import api_service
from bot.front_door import Part
from bot.settings import BotSettings
from connectors.confluence_api.events import RECEIVER, signature
from connectors.live_events import _PREFIX, EventLog
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.kv import make_kv
from tests.connectors.live.receivers import (
    HeldLog,
    MountedDoor,
    assert_stopping_ends_the_receiver,
    service_runtime,
)

SECRET = "webhook-secret-0123456789"
GUARD_S = 30.0  # fails a test that would otherwise hang (the fixed code never comes near it)


def webhook_app(settings: BotSettings) -> FastAPI:
    """The webhook route alone, with the recorder the settings give (None: no route to serve)."""
    app = FastAPI()
    app.state.confluence_webhooks = webhooks.confluence_recorder(settings)
    app.include_router(webhooks.router)
    return app


def client(settings: BotSettings) -> TestClient:
    return TestClient(webhook_app(settings))


def test_signed_webhooks_are_recorded_and_others_refused(redis_url, tmp_path) -> None:
    r = redis.Redis.from_url(redis_url)
    r.delete(f"{_PREFIX}confluence")
    settings = BotSettings(
        _env_file=None, data_dir=tmp_path, redis_url=redis_url, confluence_webhook_secret=SECRET
    )
    http = client(settings)
    body = b'{"timestamp": 1, "content": {"id": 103, "contentType": "page"}}'
    assert http.post("/webhooks/confluence", content=body).status_code == 401
    forged = {"X-Hub-Signature": signature(body, "not-the-secret")}
    assert http.post("/webhooks/confluence", content=body, headers=forged).status_code == 401
    good = {"X-Hub-Signature": signature(body, SECRET)}
    assert http.post("/webhooks/confluence", content=body, headers=good).status_code == 204
    recorder = http.app.state.confluence_webhooks  # type: ignore[attr-defined]
    assert recorder.flush(GUARD_S)  # written by the recorder's thread
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(f"{_PREFIX}confluence"))
    assert [fields[b"h"] for _, fields in entries] == [b"103"]
    recorder.close()
    r.close()


def test_without_a_secret_or_redis_there_is_no_webhook(tmp_path) -> None:
    body = b'{"page": {"id": 1}}'
    off = BotSettings(_env_file=None, data_dir=tmp_path, redis_url=None, confluence_webhook_secret=SECRET)
    assert client(off).post("/webhooks/confluence", content=body).status_code == 404
    none = BotSettings(_env_file=None, data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert client(none).post("/webhooks/confluence", content=body).status_code == 404


def signed_post(http: httpx.AsyncClient, body: bytes, secret: str = SECRET) -> Awaitable[httpx.Response]:
    return http.post(
        "/webhooks/confluence", content=body, headers={"X-Hub-Signature": signature(body, secret)}
    )


async def test_a_hanging_event_log_write_delays_no_webhook_answer(redis_url, tmp_path) -> None:
    """Redis hangs on the first hint's write: every webhook is still answered at once (204, and 401/400 for the
    forged and the unreadable), and once Redis answers again every hint lands, in the order they came."""
    redis.Redis.from_url(redis_url).delete(f"{_PREFIX}{RECEIVER}")
    settings = BotSettings(
        _env_file=None, data_dir=tmp_path, redis_url=redis_url, confluence_webhook_secret=SECRET
    )
    app = webhook_app(settings)
    recorder = app.state.confluence_webhooks
    assert recorder is not None
    log = EventLog(redis_url, RECEIVER)
    held = HeldLog(redis_url, RECEIVER, 2 * GUARD_S)  # longer than a response's guard: that one fails first
    recorder.receiver.log = held
    ids = [101 + i for i in range(10)]  # more webhooks than the default thread pool's workers
    try:
        position = log.read(None).position
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ragbot.test") as http:
            for i, page in enumerate(ids):
                body = json.dumps({"timestamp": i, "page": {"id": page}}).encode()
                response = await asyncio.wait_for(signed_post(http, body), GUARD_S)
                assert response.status_code == 204
                if i == 0:  # the first hint's write now hangs
                    assert await asyncio.to_thread(held.entered.wait, GUARD_S)
            forged = await asyncio.wait_for(signed_post(http, b'{"page": {"id": 1}}', "not-it"), GUARD_S)
            unreadable = await asyncio.wait_for(signed_post(http, b"not json"), GUARD_S)
            assert (forged.status_code, unreadable.status_code) == (401, 400)
            assert not held.release.is_set()  # all of that while the write still hangs
            held.release.set()
            assert await asyncio.to_thread(recorder.flush, GUARD_S)
        pending = log.read(position)
    finally:
        held.release.set()  # a failing run must not leave a thread waiting
        recorder.close()
        log.close()
        held.close()
    assert pending.complete and pending.hints == [str(page) for page in ids]


@pytest.mark.parametrize("where", ["front door", "own port"])
async def test_a_stopped_api_service_ends_the_webhooks_receiver(
    small_engine: Engine, tmp_path: Path, redis_url: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API service serves the webhook route while it runs, and closes its recorder when it stops (SIGTERM
    cancels it): the receiver's alive key goes at once, not three minutes later."""
    redis.Redis.from_url(redis_url).delete(f"{_PREFIX}{RECEIVER}")
    settings = BotSettings(
        _env_file=None,
        data_dir=tmp_path,
        redis_url=redis_url,
        confluence_webhook_secret=SECRET,
        api_tokens=json.dumps({"api-token-0123456789abcdef": {"name": "ops"}}),
    )
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    kv = make_kv(redis_url)
    door = MountedDoor(settings)
    if where == "own port":  # `ragbot api --port`: uvicorn on a socket of its own, no front door
        serve_socket = api_server._serve_socket

        async def served(app: Part, sock: Any) -> None:
            door.api = app
            door.mounted.set()
            await serve_socket(app, sock)

        monkeypatch.setattr(api_server, "_serve_socket", served)
    runtime = service_runtime(settings, small_engine, kv, feedback, door if where == "front door" else None)
    service = api_service(settings, port=0) if where == "own port" else api_service(settings)
    log = EventLog(redis_url, RECEIVER)
    task = asyncio.create_task(service.run(runtime))
    try:
        await asyncio.wait_for(door.mounted.wait(), GUARD_S)
        assert door.api is not None
        body = b'{"page": {"id": 101}}'
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=door.api), base_url="http://ragbot.test"
        ) as http:
            assert (await asyncio.wait_for(signed_post(http, body), GUARD_S)).status_code == 204
        await assert_stopping_ends_the_receiver(task, log)
    finally:
        task.cancel()
        feedback.close()
        log.close()
