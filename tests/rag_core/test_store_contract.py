"""One contract suite run against every store: qdrant-edge on disk, qdrant-client local on disk, and
qdrant-client `:memory:` standing in for the server API."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient

from rag_core.sparse import SparseVector
from rag_core.store import NEVER, StoredPoint, Where
from rag_core.store.client import ClientStore
from rag_core.store.edge import EdgeStore

DIM = 8


@pytest.fixture(params=["edge", "client-local", "client-memory"])
def store(request, tmp_path):
    if request.param == "edge":
        s = EdgeStore(tmp_path / "edge" / "c")
    elif request.param == "client-local":
        s = ClientStore(QdrantClient(path=str(tmp_path / "local")), "c")
    else:
        s = ClientStore(QdrantClient(":memory:"), "c")
    s.ensure_collection(DIM)
    yield s
    s.close()


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def point(
    doc_id: str, pos: int, vec, terms: dict[int, float], source="wiki", gen=1, dead=NEVER
) -> StoredPoint:
    return StoredPoint(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc_id}-{pos}-{gen}")),
        dense=unit(vec),
        sparse=SparseVector(list(terms), list(terms.values())),
        payload={
            "doc_id": doc_id,
            "source": source,
            "position": pos,
            "gen": gen,
            "dead": dead,
            "text": doc_id,
        },
    )


def seed(store):
    store.upsert(
        [
            point("a", 0, [1, 0, 0, 0, 0, 0, 0, 0], {1: 1.0, 2: 1.0}),
            point("a", 1, [0.9, 0.1, 0, 0, 0, 0, 0, 0], {2: 1.0}),
            point("b", 0, [0, 1, 0, 0, 0, 0, 0, 0], {3: 1.0}, source="drive"),
            point("c", 0, [0, 0, 1, 0, 0, 0, 0, 0], {1: 1.0, 4: 2.0}, source="drive", gen=2),
        ]
    )


def test_dense_and_sparse_search_rank_best_first(store):
    seed(store)
    dense, sparse = store.search(unit([1, 0, 0, 0, 0, 0, 0, 0]), SparseVector([3], [1.0]), 10, Where())
    assert [h.payload["doc_id"] for h in dense][:2] == ["a", "a"]
    assert dense[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.payload["doc_id"] for h in sparse] == ["b"]
    assert sparse[0].dense is not None and len(sparse[0].dense) == DIM  # BM25 hits carry their dense vector


def test_idf_makes_rare_terms_count_more(store):
    seed(store)
    # term 1 is in two points, term 3 in one: with IDF, a query for both ranks the term-3 point first
    _, sparse = store.search(unit([1] * DIM), SparseVector([1, 3], [1.0, 1.0]), 10, Where())
    assert sparse[0].payload["doc_id"] == "b"


def test_filters_by_source_and_generation(store):
    seed(store)
    q = unit([1, 1, 1, 0, 0, 0, 0, 0])
    dense, _ = store.search(q, SparseVector([], []), 10, Where(sources=["drive"]))
    assert {h.payload["doc_id"] for h in dense} == {"b", "c"}
    dense, _ = store.search(q, SparseVector([], []), 10, Where.visible(1))
    assert {h.payload["doc_id"] for h in dense} == {"a", "b"}  # c was written by generation 2
    dense, _ = store.search(q, SparseVector([], []), 10, Where(sources=[]))
    assert dense == []  # an empty allow-list sees nothing


def test_set_payload_delete_scroll_count(store):
    seed(store)
    store.set_payload(Where(doc_id="a"), {"dead": 2})
    assert store.count(Where.visible(1)) == 3  # at generation 1, a is still alive
    assert store.count(Where.visible(2)) == 2  # b and c
    store.delete(Where(dead_lte=2))
    assert store.count() == 2
    firsts = sorted(p["doc_id"] for p in store.scroll(Where(position=0), ["doc_id"]))
    assert firsts == ["b", "c"]


def test_meta_round_trip(store):
    assert store.read_meta() == {}
    store.write_meta({"generation": 3, "x": "y"})
    assert store.read_meta() == {"generation": 3, "x": "y"}
    assert store.ping()


def test_edge_store_survives_reopen(tmp_path):
    path = tmp_path / "edge" / "c"
    s = EdgeStore(path)
    s.ensure_collection(DIM)
    seed(s)
    s.write_meta({"generation": 2})
    s.close()
    again = EdgeStore(path)
    assert again.count() == 4 and again.read_meta()["generation"] == 2
    again.close()


def test_edge_store_refuses_a_second_opener_cleanly(tmp_path):
    from rag_core.errors import StoreUnavailable

    path = tmp_path / "edge" / "c"
    first = EdgeStore(path)
    first.ensure_collection(DIM)
    seed(first)
    with pytest.raises(StoreUnavailable, match="in use by another process"):
        EdgeStore(path)
    first.write_meta({"generation": 1})  # the holder is unharmed
    assert first.count() == 4
    first.close()
    again = EdgeStore(path)  # released on close
    assert again.count() == 4
    again.close()


def test_readers_filter_applies_inside_the_search_on_every_store(store):
    """A restricted point is never a candidate for an audience it does not name, dense and BM25 alike; a point
    without `readers` (written before permissions existed) counts as visible to everyone."""
    restricted = point("secret", 0, [1, 0, 0, 0, 0, 0, 0, 0], {7: 1.0})
    restricted.payload["readers"] = ["group:legal"]
    public = point("open", 0, [0.8, 0.2, 0, 0, 0, 0, 0, 0], {7: 0.5})
    public.payload["readers"] = ["*"]
    legacy = point("old", 0, [0.7, 0.3, 0, 0, 0, 0, 0, 0], {7: 0.4})
    store.upsert([restricted, public, legacy])
    q = unit([1, 0, 0, 0, 0, 0, 0, 0])
    sparse = SparseVector([7], [1.0])

    def docs(readers):
        dense, bm25 = store.search(q, sparse, 1, Where.visible(1, None, readers))
        return [h.payload["doc_id"] for h in dense], [h.payload["doc_id"] for h in bm25]

    # limit 1: the filter is inside the query, so the top hit is the best *readable* one, not a dropped one
    assert docs(["*"]) == (["open"], ["open"])
    assert docs(["*", "group:eng"]) == (["open"], ["open"])
    assert docs(["*", "group:legal"]) == (["secret"], ["secret"])
    assert docs(None) == (["secret"], ["secret"])
    dense, _ = store.search(q, sparse, 10, Where.visible(1, None, ["*"]))
    assert sorted(h.payload["doc_id"] for h in dense) == ["old", "open"]


def test_an_index_from_before_permissions_gets_the_readers_payload_index(tmp_path):
    """The `readers` filter runs on every query: an index created before it existed is given its payload index."""
    import qdrant_edge as qe

    path = tmp_path / "edge" / "c"
    old = EdgeStore(path)
    old.ensure_collection(DIM)
    seed(old)
    old.shard.update(qe.UpdateOperation.delete_field_index("readers"))
    assert "readers" not in old.shard.info().payload_schema
    old.close()
    again = EdgeStore(path)
    assert "readers" in again.shard.info().payload_schema and again.count() == 4
    again.close()
    # (qdrant-client's local mode keeps no payload indexes; a Qdrant server gets the same check on first use)


def test_a_document_readable_by_nobody_is_never_stored_with_empty_readers(store):
    """An empty `readers` list would pass the filter (it lets empty and absent fields through, for points written
    before permissions existed): a document restricted to nobody carries a value no audience matches instead."""
    from rag_core.permissions import Access, Audience

    nobody = point("nobody", 0, [1, 0, 0, 0, 0, 0, 0, 0], {7: 1.0})
    nobody.payload["readers"] = Access.only(set()).readers()
    assert nobody.payload["readers"] and Access.from_readers(nobody.payload["readers"]) == Access.only(set())
    store.upsert([nobody])
    q, sparse = unit([1, 0, 0, 0, 0, 0, 0, 0]), SparseVector([7], [1.0])
    for audience in (Audience.public(), Audience.of(["user:a@x.com", "group:eng"])):
        dense, bm25 = store.search(q, sparse, 5, Where.visible(1, None, audience.reader_values()))
        assert dense == bm25 == []
        assert not audience.may_read(nobody.payload["readers"])
    dense, _ = store.search(q, sparse, 5, Where.visible(1, None, Audience.operator().reader_values()))
    assert [h.payload["doc_id"] for h in dense] == ["nobody"]
