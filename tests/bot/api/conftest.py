"""A real uvicorn server on a free port serving the API over the real engine, Redis and query log."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.api.app import build_context, create_app
from bot.api.context import ApiContext
from bot.api.server import ApiServer
from bot.api.settings import load_tokens
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.kv import make_kv
from rag_core.settings import Settings, SourceConfig
from tests.bot.slack.conftest import llm_engine  # noqa: F401 (the small engine answering through the test LLM)
from tests.bot.slack.engines import SlowEngine

ADMIN = "admin-token-0123456789abcdef"  # every source, admin
PUBLIC = "public-token-0123456789abcdef"  # public sources only (no list given)
FINANCE = "finance-token-0123456789abcdef"  # only finance-private
TOKENS = {
    ADMIN: {"name": "ops", "sources": ["*"], "admin": True},
    PUBLIC: {"name": "intranet"},
    FINANCE: {"name": "finance", "sources": ["finance-private"]},
}


def api_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        _env_file=None,
        data_dir=tmp_path,
        redis_url=redis_url,
        api_tokens=json.dumps(TOKENS),
        rate_limit_per_minute=1000,
        log_json=False,
        sources=[
            SourceConfig(name="eng-wiki", kind="confluence", path=tmp_path),
            SourceConfig(name="people-drive", kind="drive", path=tmp_path),
            SourceConfig(name="finance-private", kind="drive", path=tmp_path, public=False),
        ],
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningApi:
    """A served API and what tests inspect behind it."""

    server: ApiServer
    ctx: ApiContext
    feedback: FeedbackStore
    resyncs: list[tuple[str | None, bool]]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = ADMIN, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


def fake_resync(
    calls: list[tuple[str | None, bool]],
) -> Callable[[str | None, bool, Callable[[str], None]], str]:
    """Stands in for connectors.sync (tested in tests/connectors); the conversation layer around it is real."""

    def resync(source: str | None, full: bool, progress: Callable[[str], None]) -> str:
        calls.append((source, full))
        progress(f"reading {source or 'all sources'}")
        return f"synced {source or 'all'}: 0 added (full={full})"

    return resync


@contextlib.contextmanager
def running_api(engine: Any, tmp_path: Path, redis_url: str, **overrides: Any) -> Iterator[RunningApi]:
    settings = api_settings(tmp_path, redis_url, **overrides)
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    calls: list[tuple[str | None, bool]] = []
    ctx = build_context(
        settings, load_tokens(settings), make_kv(redis_url), engine, feedback, fake_resync(calls)
    )
    server = ApiServer(create_app(ctx))
    try:
        yield RunningApi(server, ctx, feedback, calls)
    finally:
        server.stop()
        feedback.close()


@pytest.fixture
def api(small_engine: Engine, tmp_path: Path, clean_redis: str) -> Iterator[RunningApi]:
    with running_api(small_engine, tmp_path, clean_redis) as running:
        yield running


@pytest.fixture(scope="module")
def shared_api(
    small_engine: Engine, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[RunningApi]:
    """One server for a module's read-only checks (auth, schema fuzzing): starting one per case adds up."""
    with running_api(small_engine, tmp_path_factory.mktemp("shared-api"), redis_url) as running:
        yield running


@pytest.fixture
def streaming_api(llm_engine: Engine, tmp_path: Path, clean_redis: str) -> Iterator[RunningApi]:  # noqa: F811
    """The LLM-backed engine handing its answer over in pieces 0.2 s apart, so streaming is seen whatever the
    machine's load (the local LLM server sends every token at once)."""
    engine = SlowEngine(llm_engine, pieces=4, pause_s=0.2)
    engine.release.set()
    with running_api(engine, tmp_path, clean_redis) as running:
        yield running


@pytest.fixture
def llm_api(llm_engine: Engine, tmp_path: Path, clean_redis: str) -> Iterator[RunningApi]:  # noqa: F811
    with running_api(llm_engine, tmp_path, clean_redis) as running:
        yield running
