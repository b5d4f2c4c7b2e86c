"""Permissions benchmark: the cost of the `readers` filter inside the store query, on the whole handbook.

Every page of the Sourcegraph handbook (../shared/corpora/sourcegraph-handbook, ~12k chunks) is chunked with the
engine's Chunker; a realistic ACL mix restricts 20 % of the pages to one of 10 groups (seeded). Chunks are written
to a qdrant-edge store with the payload `chunk_payload` writes (`readers` indexed as a keyword). Each question then
runs `store.search` exactly as the retriever calls it (dense + BM25 top 30, `Where.visible`) for three audiences,
interleaved so that machine load hits them alike:

- no filter: the operator at the terminal (`Audience.operator()`, no `readers` condition);
- member: an asker in 2 of the 10 groups (`*`, their user, their groups);
- public: `Audience.public()` (`*` only).

Printed: p50/p95 of each, and filter / no filter as a ratio, before and after the HNSW build (`optimize()`), plus the
dense recall@30 of HNSW search against exact search under each audience's filter, and a check that no hit escapes the
filter. Goal: filtered p50 and p95 within 1.2x of no filter. "As loaded" is how an index of this size is served
before the first optimize: the indexer builds the HNSW graph after a sync writing `RAG_OPTIMIZE_AFTER_POINTS` (5,000) chunks.

Dense vectors: embedding 12k chunks with the real model takes 20+ minutes on a loaded 2-core machine, so by default
they come from a cheap deterministic stand-in (each chunk's BM25 term weights through a fixed random projection to
384 dimensions, unit length: lexically similar texts get similar vectors). The texts, BM25 vectors, payloads, store
and filter are the real ones. `--real-embeddings` (with `--limit-pages` to keep it short) uses the real model.

    .venv/bin/python benchmarks/permissions_bench.py [--limit-pages N] [--queries Q] [--real-embeddings]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import BaseCorpus, bench_settings, handbook_documents, make_chunker, percentile, questions

from rag_core.embedding import Embedder
from rag_core.permissions import Access, Audience, group, user
from rag_core.sparse import Bm25Encoder, SparseVector
from rag_core.store import StoredPoint, Where
from rag_core.store.edge import EdgeStore, _filter
from rag_core.store.payload import chunk_payload

LIMIT = 30  # top_k 10 x candidate_multiplier 3, as store_bench.py
GEN = 1
DIM = 384


class StandIn:
    """Deterministic dense vectors from BM25 term weights: a fixed random projection (not a language model)."""

    def __init__(self, dim: int = DIM, buckets: int = 1 << 16, seed: int = 0) -> None:
        self.buckets = buckets
        self.matrix = np.random.default_rng(seed).normal(size=(buckets, dim)).astype(np.float32)

    def vector(self, sparse: SparseVector) -> np.ndarray:
        if not sparse.indices:
            return self.matrix[0] / np.linalg.norm(self.matrix[0])
        rows = self.matrix[np.asarray(sparse.indices) % self.buckets]
        vec = (np.asarray(sparse.values, dtype=np.float32)[:, None] * rows).sum(axis=0)
        return vec / np.linalg.norm(vec)


def audiences(groups: list[str], rng: random.Random) -> dict[str, Audience]:
    return {
        "no filter (operator)": Audience.operator(),
        "member of 2 groups": Audience.of([user("asker@example.com"), *rng.sample(groups, 2)]),
        "public": Audience.public(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-pages", type=int, default=0, help="only the first N pages (0: all)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--restricted", type=float, default=0.2, help="share of pages restricted to a group")
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--real-embeddings", action="store_true", help="embed with the real model (slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = bench_settings(embedding_backend="fp32")
    embedder = Embedder(settings)
    chunker = make_chunker(embedder, settings)
    sparse = Bm25Encoder(settings)
    rng = random.Random(args.seed)
    docs = handbook_documents()
    rng.shuffle(docs)
    if args.limit_pages:
        docs = docs[: args.limit_pages]
    groups = [group(f"team-{i}") for i in range(args.groups)]
    restricted = 0
    for i, doc in enumerate(docs):
        if rng.random() < args.restricted:
            docs[i] = replace(doc, access=Access.only({rng.choice(groups)}))
            restricted += 1
    started = time.perf_counter()
    chunks = [c for doc in docs for c in chunker.split(doc)]
    restricted_chunks = sum(1 for c in chunks if c.readers != ("*",))
    print(
        f"handbook: {len(docs)} pages, {restricted} restricted to one of {args.groups} groups; {len(chunks)} chunks "
        f"({restricted_chunks / len(chunks):.1%} restricted), chunked in {time.perf_counter() - started:.1f} s"
    )
    sparse_vecs = [sparse.encode_document(c.embed_text) for c in chunks]
    started = time.perf_counter()
    if args.real_embeddings:
        dense = embedder.encode_passages([c.embed_text for c in chunks])
        print(f"dense vectors: the real model ({embedder.name}), {time.perf_counter() - started:.1f} s")

        def query_vector(text: str) -> np.ndarray:
            return embedder.encode_query(text)
    else:
        stand_in = StandIn()
        dense = np.stack([stand_in.vector(s) for s in sparse_vecs])
        print(
            "dense vectors: DETERMINISTIC STAND-IN (BM25 weights through a fixed random projection), not the real "
            f"model — texts, BM25, payloads, store and filter are real ({time.perf_counter() - started:.1f} s)"
        )

        def query_vector(text: str) -> np.ndarray:
            return stand_in.vector(sparse.encode_query(text))

    base = BaseCorpus(chunks, dense, sparse_vecs)
    texts = questions(base, args.queries, seed=args.seed + 1)
    queries = [(query_vector(t), sparse.encode_query(t)) for t in texts]
    audience_by_name = audiences(groups, rng)
    workdir = Path(tempfile.mkdtemp(prefix="permissions-bench-"))
    try:
        store = EdgeStore(workdir / "edge" / "bench")
        store.ensure_collection(DIM)
        started = time.perf_counter()
        for start in range(0, len(chunks), 256):
            store.upsert(
                [
                    StoredPoint(c.point_id, dense[i], sparse_vecs[i], chunk_payload(c, "v1", GEN))
                    for i, c in enumerate(chunks[start : start + 256], start)
                ]
            )
        store.write_meta({"generation": GEN})
        print(
            f"store: {len(chunks)} points upserted in {time.perf_counter() - started:.1f} s; {state(store)}"
        )
        results = {"as loaded": measure(store, queries, audience_by_name)}
        started = time.perf_counter()
        store.shard.optimize()
        print(f"\noptimize() (HNSW build): {time.perf_counter() - started:.1f} s; {state(store)}")
        results["HNSW built"] = measure(store, queries, audience_by_name)
        for (
            name,
            audience,
        ) in audience_by_name.items():  # the operator's (no readers condition) is the reference
            recall = filtered_recall(store, queries, audience)
            print(f"  dense recall@{LIMIT} of HNSW vs exact search, same filter, {name}: {recall:.3f}")
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nsummary (same run, interleaved):")
    for phase, figures in results.items():
        base_p50, base_p95 = figures["no filter (operator)"]
        for name, (p50, p95) in figures.items():
            if name.startswith("no filter"):
                continue
            print(
                f"  {phase:<11} {name:<20} p50 {p50:6.2f} ms ({p50 / base_p50:.2f}x)  "
                f"p95 {p95:6.2f} ms ({p95 / base_p95:.2f}x)  vs no filter p50 {base_p50:.2f} / p95 {base_p95:.2f} ms"
            )
    print("goal: filtered within 1.2x of no filter")


def state(store: EdgeStore) -> str:
    info = store.shard.info()
    return f"{info.points_count} points, {info.indexed_vectors_count} HNSW-indexed vectors, {info.segments_count} segments"


def measure(
    store: EdgeStore, queries: list[tuple[np.ndarray, SparseVector]], audience_by_name: dict[str, Audience]
) -> dict[str, tuple[float, float]]:
    """p50/p95 ms of `store.search` per audience; audiences interleaved per query (rotating order)."""
    wheres = {n: Where.visible(GEN, None, a.reader_values()) for n, a in audience_by_name.items()}
    names = list(wheres)
    for dense, sparse in queries[:20]:  # warm up
        for name in names:
            store.search(dense, sparse, LIMIT, wheres[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    for i, (dense, sparse) in enumerate(queries):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            started = time.perf_counter()
            dense_hits, sparse_hits = store.search(dense, sparse, LIMIT, wheres[name])
            times[name].append((time.perf_counter() - started) * 1000)
            audience = audience_by_name[name]
            escaped = [h for h in dense_hits + sparse_hits if not audience.may_read(h.payload.get("readers"))]
            assert not escaped, f"a hit escaped the filter for {name}"
            assert len(dense_hits) == LIMIT, "a filtered query returned fewer than the limit"
    out = {}
    for name in names:
        p50, p95 = percentile(times[name], 50), percentile(times[name], 95)
        out[name] = (p50, p95)
        print(f"  {name:<22} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({len(times[name])} queries)")
    return out


def filtered_recall(
    store: EdgeStore, queries: list[tuple[np.ndarray, SparseVector]], audience: Audience
) -> float:
    import qdrant_edge as qe

    flt = _filter(Where.visible(GEN, None, audience.reader_values()))
    found = total = 0
    for dense, _ in queries:
        vector = [float(x) for x in dense]

        def ids(exact: bool, vector: list[float] = vector) -> set[str]:
            request = qe.QueryRequest(
                limit=LIMIT,
                query=qe.Query.Nearest(vector, using="dense"),
                filter=flt,
                params=qe.SearchParams(exact=exact),
            )
            return {str(p.id) for p in store.shard.query(request)}

        truth = ids(True)
        found += len(truth & ids(False))
        total += len(truth)
    return found / max(total, 1)


if __name__ == "__main__":
    main()
