"""The real Bolt app wired to the real engine, Redis and query log, with Slack's servers replaced by FakeSlack."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Conversation
from bot.settings import BotSettings
from bot.slack.app import build_app, change_recorder
from bot.slack.http import http_app
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.generation import LLMGenerator
from rag_core.kv import MemoryKV, make_kv
from rag_core.settings import SourceConfig
from tests.bot.slack.fake_slack import FakeSlack

if TYPE_CHECKING:
    from connectors.slack_threads.events import SlackChangeRecorder

SIGNING_SECRET = "test-signing-secret"
ADMIN = "UADMIN"
FINANCE_CHANNEL = "CFIN"

PUBLIC_SOURCES = [
    "eng-wiki",
    "people-drive",
]  # the lead's small_engine documents live in these and "finance-private"


@pytest.fixture
def llm_engine(small_engine: Engine, openai_server: Any) -> Engine:
    """The small engine's index and models, answering through the local OpenAI-compatible server."""
    settings = small_engine.settings.model_copy(
        update={
            "openai_base_url": openai_server.base_url,
            "llm_model": "test-model",
            # One scripted reply serves every call: keep the query-side calls (tests/rag_core/test_answer_quality.py
            # covers them) from searching with the answer's text.
            "rewrite_follow_ups": False,
            "multi_query": 0,
        }
    )
    return Engine(
        settings,
        store=small_engine.store,
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),  # its own answer cache, so every question reaches the LLM
        generator=LLMGenerator(settings),
    )


def bot_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> BotSettings:
    values: dict[str, Any] = dict(
        _env_file=None,
        data_dir=tmp_path,
        redis_url=redis_url,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        admin_user_ids=[ADMIN],
        stream_edit_interval_s=0.05,
        rate_limit_per_minute=100,
        sources=[
            SourceConfig(name="eng-wiki", kind="confluence", path=tmp_path),
            SourceConfig(name="people-drive", kind="drive", path=tmp_path),
            SourceConfig(
                name="finance-private",
                kind="drive",
                path=tmp_path,
                public=False,
                allowed_channels=[FINANCE_CHANNEL],
            ),
        ],
    )
    values.update(overrides)
    return BotSettings(**values)


@dataclass
class SlackBot:
    """Everything a test drives or inspects."""

    fake: FakeSlack
    settings: BotSettings
    conversation: Conversation
    feedback: FeedbackStore
    app: AsyncApp
    http: httpx.AsyncClient
    recorder: SlackChangeRecorder | None = None  # with a slack_threads source: the events' change recorder

    def signed_headers(self, body: str, *, timestamp: int | None = None, retry: int | None = None) -> dict:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(
                timestamp=ts, body=body
            ),
        }
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return headers

    async def post_event(self, body: dict, *, retry: int | None = None) -> tuple[httpx.Response, float]:
        """Deliver an Events API body over signed HTTP; returns the response and seconds until it came."""
        raw = json.dumps(body)
        headers = {"Content-Type": "application/json", **self.signed_headers(raw, retry=retry)}
        started = time.monotonic()
        resp = await self.http.post("/slack/events", content=raw, headers=headers)
        return resp, time.monotonic() - started

    async def post_command(self, payload: dict) -> tuple[httpx.Response, float]:
        raw = urllib.parse.urlencode(payload)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.signed_headers(raw)}
        started = time.monotonic()
        resp = await self.http.post("/slack/events", content=raw, headers=headers)
        return resp, time.monotonic() - started


@contextlib.asynccontextmanager
async def make_bot(
    engine: Any, tmp_path: Path, redis_url: str, resync: Any = None, **overrides: Any
) -> AsyncIterator[SlackBot]:
    fake = await FakeSlack().start()
    settings = bot_settings(tmp_path, redis_url, **overrides)
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    conversation = Conversation(engine, settings, make_kv(redis_url), feedback, resync)
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
    try:
        async with change_recorder(settings) as recorder:  # closed on the way out, as the services do
            app = build_app(settings, conversation, client=client, recorder=recorder)
            transport = httpx.ASGITransport(app=http_app(app, SIGNING_SECRET, settings.slack_max_body_bytes))
            http = httpx.AsyncClient(transport=transport, base_url="http://ragbot.test", timeout=30)
            try:
                yield SlackBot(fake, settings, conversation, feedback, app, http, recorder)
            finally:
                await http.aclose()
    finally:
        await fake.stop()
        feedback.close()


@pytest.fixture
async def bot(small_engine: Engine, tmp_path: Path, clean_redis: str) -> AsyncIterator[SlackBot]:
    async with make_bot(small_engine, tmp_path, clean_redis) as b:
        yield b
