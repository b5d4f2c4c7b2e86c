"""An engine over its own index (the small documents, then whatever a test saves), so curated answers a test
saves never reach the shared small engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.engine import Engine
from tests.conftest import empty_index_engine, small_documents


def own_index_engine(small_engine: Engine, data_dir: Path) -> Engine:
    engine = empty_index_engine(small_engine, data_dir)
    with engine.index_writer().begin() as tx:
        for doc in small_documents():
            tx.upsert(doc, "v1")
        tx.commit()
    return engine


@pytest.fixture
def engine(small_engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    own = own_index_engine(small_engine, tmp_path / "index")
    yield own
    own.close()
