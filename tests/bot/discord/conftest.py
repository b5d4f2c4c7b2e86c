"""The real Discord client (discord.py driven by simcord's in-memory gateway and REST), over the real engine,
a real Redis and a real SQLite feedback store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.conversation import Conversation
from bot.discord.app import RagbotClient, build_client
from bot.settings import BotSettings
from rag_core.feedback import FeedbackStore
from rag_core.kv import KeyValue, make_kv
from tests.conftest import empty_redis

ADMIN_ROLE = "Librarians"


class RecordingEngine:
    """The real engine, remembering the arguments each answer was asked with (history, allowed sources)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls: list[dict[str, Any]] = []

    def answer(self, question: str, **kwargs: Any) -> Any:
        self.calls.append({"question": question, **kwargs})
        return self.engine.answer(question, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "discord_settings(**values): Settings overrides for the Discord bot")


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> BotSettings:
    marker = request.node.get_closest_marker("discord_settings")
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "discord_admin_role": ADMIN_ROLE,
        "stream_edit_interval_s": 0.0,
        "rate_limit_per_minute": 20,
        "daily_spend_cap_usd": 5.0,
        **(marker.kwargs if marker else {}),
    }
    return BotSettings(_env_file=None, **values)


@pytest.fixture
def kv(redis_url: str) -> KeyValue:
    # The run's own database (tests/conftest.py claims one): a shared one let parallel runs of this suite, whose
    # simcord message ids are the same in every run, mark each other's messages as duplicates.
    url = redis_url
    empty_redis(url)
    store = make_kv(url)
    assert store.ping(), f"Redis at {url} does not answer"
    return store


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[FeedbackStore]:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield store
    store.close()


@pytest.fixture
def engine(small_engine: Any) -> RecordingEngine:
    return RecordingEngine(small_engine)


@pytest.fixture
def llm_engine(small_engine: Any, openai_server: Any, tmp_path: Path) -> RecordingEngine:
    """The small engine's index and models, answering through the local OpenAI-compatible server."""
    from rag_core.engine import Engine
    from rag_core.generation import LLMGenerator
    from rag_core.kv import MemoryKV

    llm_settings = small_engine.settings.model_copy(
        update={"openai_base_url": openai_server.base_url, "llm_model": "test-model"}
    )
    return RecordingEngine(
        Engine(
            llm_settings,
            store=small_engine.store,
            embedder=small_engine.embedder,
            reranker=small_engine.reranker,
            kv=MemoryKV(),  # a cache of its own: every test's question reaches the LLM
            generator=LLMGenerator(llm_settings),
        )
    )


@pytest.fixture
def resync_calls() -> list[tuple[str | None, bool]]:
    return []


@pytest.fixture
def conversation(
    engine: Any, settings: BotSettings, kv: KeyValue, feedback: FeedbackStore, resync_calls: list
) -> Conversation:
    def resync(source: str | None, full: bool, progress: Any) -> str:
        # Stands in for connectors.sync, which has its own tests; here only the command's wiring matters.
        resync_calls.append((source, full))
        progress(f"syncing {source or 'all sources'}…")
        return f"**{source or 'all'}**: 2 added, 0 updated, 0 deleted"

    return Conversation(engine, settings, kv, feedback, resync=resync)


@pytest.fixture
def simcord_bot(settings: BotSettings, conversation: Conversation) -> RagbotClient:
    return build_client(settings, conversation)
