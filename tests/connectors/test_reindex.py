"""`ragbot reindex`: a new collection beside the live one, answers from the old until one switch, old dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from connectors.reindex import reindex
from connectors.sync import run_sync
from rag_core.errors import UserError
from rag_core.settings import SourceConfig
from rag_core.sparse import SparseVector
from rag_core.store import StoredPoint, Where, open_store
from rag_core.store import aliases as al
from rag_core.store.client import ClientStore
from tests.connectors import exports


def wiki(tmp_path: Path) -> list[SourceConfig]:
    return [
        SourceConfig(name="eng-wiki", kind="confluence", path=exports.copy_sample("confluence-eng", tmp_path))
    ]


def test_reindex_builds_beside_the_live_index_and_switches(make_engine, small_engine, tmp_path: Path) -> None:
    engine, settings = make_engine(wiki(tmp_path))
    (first,) = run_sync(settings, engine.index_writer())
    assert first.ok and first.chunks_written > 0
    before = [c.doc_id for c in engine.sources("How do we page the on-call engineer?")]
    seen_during: list[list[str]] = []

    def progress(line: str) -> None:  # runs mid-reindex: the live index keeps answering
        seen_during.append([c.doc_id for c in engine.sources("How do we page the on-call engineer?")])

    result = reindex(settings, progress=progress, embedder=small_engine.embedder)
    assert seen_during and all(ids == before for ids in seen_during)
    assert result.live == "ragbot-r1" and result.reports[0].chunks_written == first.chunks_written
    assert result.dropped is None  # the running engine still holds the old shard open
    engine.close()

    root = al.edge_root(settings.data_dir)
    assert al.edge_live(root, "ragbot") == "ragbot-r1"
    reopened = open_store(settings)  # what a restarted bot opens
    try:
        meta = reopened.read_meta()
        assert meta["embedding_model"] == small_engine.embedder.model_id and meta["embedding_dim"] == 384
        assert reopened.count(Where.visible(meta["generation"])) == first.chunks_written
    finally:
        reopened.close()
    assert al.edge_drop(root, "ragbot") and not (root / "ragbot").exists()


def test_failed_reindex_keeps_the_live_index_and_drops_the_new_one(
    make_engine, small_engine, tmp_path: Path
) -> None:
    engine, settings = make_engine(wiki(tmp_path))
    run_sync(settings, engine.index_writer())
    engine.close()
    broken = settings.model_copy(
        update={"sources": [SourceConfig(name="eng-wiki", kind="confluence", path=tmp_path / "gone")]}
    )
    with pytest.raises(UserError, match="reindex stopped: eng-wiki: .*live index is unchanged"):
        reindex(broken, embedder=small_engine.embedder)
    root = al.edge_root(settings.data_dir)
    assert al.edge_live(root, "ragbot") == "ragbot" and not (root / "ragbot-r1").exists()


def test_sync_with_another_model_refuses_and_names_reindex(make_engine, tmp_path: Path) -> None:
    engine, settings = make_engine(wiki(tmp_path))
    run_sync(settings, engine.index_writer())
    meta = engine.store.read_meta()
    meta.update(embedding_model="bge-base-en", embedding_dim=768)  # as if an earlier config wrote it
    engine.store.write_meta(meta)
    (report,) = run_sync(settings, engine.index_writer(), full=True)
    assert report.error and "ragbot reindex" in report.error and "bge-base-en" in report.error
    assert "\n" not in report.error


def point(i: int, text: str) -> StoredPoint:
    return StoredPoint(
        id=f"00000000-0000-0000-0000-{i:012d}",
        dense=[1.0, 0.0],
        sparse=SparseVector([], []),
        payload={"text": text, "gen": 1, "dead": 2**53},
    )


def test_qdrant_alias_switch_is_one_step_for_readers() -> None:
    client = QdrantClient(":memory:")
    live = ClientStore(client, "ragbot")
    live.ensure_collection(2)
    live.upsert([point(1, "old")])
    live.write_meta({"generation": 1})
    reader = ClientStore(client, "ragbot")  # a bot's store: always by the public name
    new = ClientStore(client, al.next_physical(al.client_live(client, "ragbot"), "ragbot"))
    new.ensure_collection(2)
    new.upsert([point(2, "new")])
    new.write_meta({"generation": 1})
    assert [h.payload["text"] for h in reader.search([1.0, 0.0], SparseVector([], []), 5, Where())[0]] == [
        "old"
    ]
    assert al.client_switch(client, "ragbot", "ragbot-r1") == "ragbot"  # first switch: plain → alias
    assert [h.payload["text"] for h in reader.search([1.0, 0.0], SparseVector([], []), 5, Where())[0]] == [
        "new"
    ]
    assert reader.read_meta() == {"generation": 1}
    newer = ClientStore(client, al.next_physical("ragbot-r1", "ragbot"))
    newer.ensure_collection(2)
    newer.upsert([point(3, "newer")])
    assert al.client_switch(client, "ragbot", "ragbot-r2") == "ragbot-r1"  # later switches: one alias call
    al.client_drop(client, "ragbot-r1")
    assert [h.payload["text"] for h in reader.search([1.0, 0.0], SparseVector([], []), 5, Where())[0]] == [
        "newer"
    ]
    assert not client.collection_exists("ragbot-r1") and client.collection_exists("ragbot__meta")
