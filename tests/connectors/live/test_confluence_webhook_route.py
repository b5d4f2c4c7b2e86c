"""The API's webhook route (bot/api/webhooks.py) with a real recorder and Redis: signed bodies recorded, others
refused, and no route at all without a secret."""

from __future__ import annotations

import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.api import webhooks
from bot.settings import BotSettings
from connectors.confluence_api.events import signature
from connectors.live_events import _PREFIX

SECRET = "webhook-secret-0123456789"


def client(settings: BotSettings) -> TestClient:
    app = FastAPI()
    app.state.confluence_webhooks = webhooks.confluence_recorder(settings)
    app.include_router(webhooks.router)
    return TestClient(app)


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
    assert [f[b"h"] for _, f in r.xrange(f"{_PREFIX}confluence")] == [b"103"]
    app_state = http.app.state.confluence_webhooks  # type: ignore[attr-defined]
    app_state.close()
    r.close()


def test_without_a_secret_or_redis_there_is_no_webhook(tmp_path) -> None:
    body = b'{"page": {"id": 1}}'
    off = BotSettings(_env_file=None, data_dir=tmp_path, redis_url=None, confluence_webhook_secret=SECRET)
    assert client(off).post("/webhooks/confluence", content=body).status_code == 404
    none = BotSettings(_env_file=None, data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert client(none).post("/webhooks/confluence", content=body).status_code == 404
