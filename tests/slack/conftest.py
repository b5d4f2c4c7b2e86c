"""The real Bolt app wired to the real engine, Redis and query log, with Slack's servers replaced by FakeSlack."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Conversation
from bot.slack_app import build_app
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.kv import make_kv
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document
from tests.slack.fake_slack import FakeSlack

SIGNING_SECRET = "test-signing-secret"
ADMIN = "UADMIN"
FINANCE_CHANNEL = "CFIN"

DOCS = [
    Document(
        id="pto",
        source="handbook",
        title="Time off",
        text="# Time off\nEmployees get 25 days of paid time off per year. Request time off in the HR portal "
        "at least two weeks ahead.",
        url="https://handbook.example.com/time-off",
        breadcrumb=["People"],
    ),
    Document(
        id="contractors",
        source="handbook",
        title="Contractors",
        text="# Contractors\nContractors do not get paid time off; they invoice for the days they work.",
        url="https://handbook.example.com/contractors",
        breadcrumb=["People"],
    ),
    Document(
        id="expenses",
        source="handbook",
        title="Expenses",
        text="# Expenses\nSubmit expense reports with receipts within 30 days. Meals are reimbursed up to "
        "50 dollars per day when travelling.",
        url="https://handbook.example.com/expenses",
        breadcrumb=["Finance"],
    ),
    Document(
        id="budget",
        source="finance",
        title="Budget 2026",
        text="# Budget 2026\nThe confidential 2026 budget for the platform team is 4 million dollars.",
        url="https://drive.example.com/budget-2026",
        breadcrumb=["Finance", "Private"],
    ),
]


@pytest.fixture(scope="session")
def slack_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A real engine over a handful of tiny documents: no LLM, so answers are extractive."""
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("slack-index"), rerank_model="")
    engine = Engine.from_settings(settings)
    with engine.index_writer().begin() as tx:
        for doc in DOCS:
            tx.upsert(doc, "v1")
    yield engine
    engine.close()


def bot_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
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
            SourceConfig(name="handbook", kind="confluence", path=tmp_path),
            SourceConfig(
                name="finance", kind="drive", path=tmp_path, public=False, allowed_channels=[FINANCE_CHANNEL]
            ),
        ],
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class SlackBot:
    """Everything a test drives or inspects."""

    fake: FakeSlack
    settings: Settings
    conversation: Conversation
    feedback: FeedbackStore
    app: AsyncApp
    http: httpx.AsyncClient

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
    app = build_app(settings, conversation, client=client)
    transport = httpx.ASGITransport(app=AsyncSlackRequestHandler(app))
    http = httpx.AsyncClient(transport=transport, base_url="http://ragbot.test", timeout=30)
    try:
        yield SlackBot(fake, settings, conversation, feedback, app, http)
    finally:
        await http.aclose()
        await fake.stop()
        feedback.close()


@pytest.fixture
async def bot(slack_engine: Engine, tmp_path: Path, clean_redis: str) -> AsyncIterator[SlackBot]:
    async with make_bot(slack_engine, tmp_path, clean_redis) as b:
        yield b
