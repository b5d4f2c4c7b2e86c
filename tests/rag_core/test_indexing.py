"""Sync visibility: queries see each document whole (old or new); a crash leaves the previous state servable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rag_core.engine import Engine
from rag_core.store import Where
from rag_core.types import Document
from tests.conftest import ROOT, make_settings


@pytest.fixture
def engine(tmp_path, small_engine):
    # shares the loaded models with small_engine, owns a fresh store
    from rag_core.store import open_store

    settings = make_settings(tmp_path)
    e = Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=small_engine.kv.__class__(),
    )
    yield e
    e.close()


def doc(i: str, text: str, source: str = "wiki") -> Document:
    return Document(id=i, source=source, title=f"Doc {i}", text=text, url=f"https://wiki/{i}")


def visible_texts(engine) -> set[str]:
    gen = engine.index_version
    return {p["text"] for p in engine.store.scroll(Where.visible(gen), ["text"])}


def test_uncommitted_writes_are_invisible_then_published_atomically(engine):
    writer = engine.index_writer()
    with writer.begin() as tx:
        tx.upsert(doc("1", "Alpha version one about paging."), "v1")
    assert engine.index_version == 1 and visible_texts(engine) == {"Alpha version one about paging."}

    tx = writer.begin()
    tx.upsert(doc("1", "Alpha version two about escalation."), "v2")
    tx.upsert(doc("2", "Bravo new page."), "v1")
    tx._flush()  # written to the store, not yet committed
    assert visible_texts(engine) == {"Alpha version one about paging."}
    assert engine.store.count() == 3  # old + two new points exist side by side
    tx.commit()
    assert engine.index_version == 2
    assert visible_texts(engine) == {"Alpha version two about escalation.", "Bravo new page."}
    assert engine.store.count() == 2  # the replaced version is gone
    assert writer.document_versions("wiki") == {"1": "v2", "2": "v1"}


def test_delete_disappears_at_commit(engine):
    writer = engine.index_writer()
    with writer.begin() as tx:
        tx.upsert(doc("1", "Keep me."), "v1")
        tx.upsert(doc("2", "Delete me."), "v1")
    tx = writer.begin()
    tx.delete("wiki", "2")
    assert visible_texts(engine) == {"Keep me.", "Delete me."}
    tx.commit()
    assert visible_texts(engine) == {"Keep me."}
    assert writer.document_versions("wiki") == {"1": "v1"}


def test_abort_restores_previous_state(engine):
    writer = engine.index_writer()
    with writer.begin() as tx:
        tx.upsert(doc("1", "Original text."), "v1")
    with pytest.raises(RuntimeError), writer.begin() as tx:
        tx.upsert(doc("1", "Half-synced text."), "v2")
        tx._flush()
        tx.delete("wiki", "1")
        raise RuntimeError("crash in the middle")
    assert engine.index_version == 1
    assert visible_texts(engine) == {"Original text."}
    assert engine.store.count() == 1
    assert engine.store.count(Where(dead_lte=10**9)) == 0  # the retire mark was undone


def test_killed_sync_process_leaves_previous_state_and_next_sync_completes(tmp_path, small_engine):
    """A real process killed mid-sync (after writing, before commit); the next sync cleans up and commits."""
    first = _engine_on(tmp_path, small_engine)
    with first.index_writer().begin() as tx:
        tx.upsert(Document(id="1", source="wiki", title="T", text="First version."), "v1")
    first.close()
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tests.conftest import make_settings
        from rag_core.engine import Engine
        from rag_core.types import Document
        e = Engine.from_settings(make_settings(Path({str(tmp_path)!r})))
        tx = e.index_writer().begin()
        tx.upsert(Document(id="1", source="wiki", title="T", text="Second version."), "v2")
        tx.upsert(Document(id="2", source="wiki", title="U", text="Another page."), "v1")
        tx._flush()
        e.store.shard.flush()
        os._exit(9)  # no commit, no clean-up, no atexit: as if killed
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], timeout=300)
    assert killed.returncode == 9

    engine = _engine_on(tmp_path, small_engine)
    try:
        assert engine.index_version == 1
        assert visible_texts(engine) == {"First version."}
        assert engine.store.count() == 3  # the dead sync's points are on disk but invisible
        with engine.index_writer().begin() as tx:
            tx.upsert(Document(id="1", source="wiki", title="T", text="Second version."), "v2")
        assert visible_texts(engine) == {"Second version."}
        assert engine.store.count() == 1
    finally:
        engine.close()


def _engine_on(data_dir, small_engine) -> Engine:
    from rag_core.store import open_store

    settings = make_settings(data_dir)
    return Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=small_engine.kv.__class__(),
    )


def test_only_a_large_sync_rebuilds_the_embedded_hnsw_index(tmp_path, small_engine):
    engine = _engine_on(tmp_path, small_engine)
    writer = engine.index_writer()
    writer.optimize_after_points = 3
    calls = []
    real_optimize = engine.store.optimize
    engine.store.optimize = lambda: calls.append(1) or real_optimize()
    with writer.begin() as tx:
        tx.upsert(doc("0", "A single page about paging."), "v1")
    assert calls == []  # small syncs leave new points to the appendable segment
    with writer.begin() as tx:
        for i in range(3):
            tx.upsert(doc(str(i), f"Page {i} about deploys and paging."), "v2")
    assert calls == [1]
    dense, _ = engine.store.search(
        engine.embedder.encode_query("deploys"), engine.sparse.encode_query("deploys"), 5, Where.visible(2)
    )
    assert sorted(h.payload["doc_id"] for h in dense) == ["0", "1", "2"]  # still searchable after optimize()
    engine.close()
