"""Connector fixtures: settings over a temp data dir, and real engines that share the session's embedding model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag_core.settings import Settings, SourceConfig
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands under test configure logging for a process; put the root logger back for the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def make_engine(small_engine, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Build real Engines over a fresh embedded store in this test's temp dir; the model is loaded once a session.

    `make_engine(sources=[...], **settings)` returns (engine, settings). Engines are closed after the test.
    """
    from rag_core.engine import Engine
    from rag_core.kv import make_kv
    from rag_core.rerank import load_reranker
    from rag_core.store import open_store

    engines = []

    def build(sources: list[SourceConfig], **overrides):
        settings = make_settings(tmp_path / "data", sources=sources, **overrides)
        engine = Engine(
            settings,
            store=open_store(settings),
            embedder=small_engine.embedder,
            reranker=load_reranker(settings),
            kv=make_kv(settings.redis_url),
        )
        engines.append(engine)
        return engine, settings

    yield build
    for engine in engines:
        engine.close()
