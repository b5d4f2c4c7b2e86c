"""Fixtures shared by the chat and API tests: an engine whose index also holds restricted pages."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bot.restricted import restricted_documents
from tests.conftest import small_documents


class RememberingEmbedder:
    """The real embedder, computing each query's vector once: the leak tests send the same 200 questions down
    a dozen paths, and only the store's filter differs between them."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.encode_query = functools.lru_cache(maxsize=4096)(real.encode_query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture(scope="session")
def restricted_engine(small_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The small engine's models over its five public documents plus "Project Falcon" (Alice only) and
    "Litigation hold" (group legal); no LLM, so answers quote the sources."""
    from rag_core.engine import Engine
    from rag_core.kv import MemoryKV
    from rag_core.store import open_store

    settings = small_engine.settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("restricted")})
    engine = Engine(
        settings,
        store=open_store(settings),
        embedder=RememberingEmbedder(small_engine.embedder),
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )
    with engine.index_writer().begin() as tx:
        for doc in [*small_documents(), *restricted_documents()]:
            tx.upsert(doc, "v1")
    yield engine
    engine.close()
