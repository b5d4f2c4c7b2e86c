"""Store benchmark: the two embedded Qdrant options at 100k chunks, measured in the same run.

qdrant-edge (`EdgeStore`, Qdrant's engine in-process: HNSW + sparse index) against qdrant-client local mode
(`ClientStore(QdrantClient(path=...))`, numpy brute force). Points are 384-d dense + BM25 sparse vectors with the
payload `chunk_payload` writes (see benchmarks/_corpus.py); every query is `store.search` exactly as the retriever
calls it: dense + BM25 top 30 with the visibility filter `Where.visible(gen, allowed_sources)`.

Prints the build (upsert) time, query p50/p95 of each, and the ratio local / edge. Goal: the chosen store queries in
<= 10 ms at 100k chunks.

    .venv/bin/python benchmarks/store_bench.py [--points N] [--queries Q] [--local-points M]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import (
    ALLOWED_SOURCES,
    CACHE,
    COMMITTED_GEN,
    BaseCorpus,
    base_corpus,
    bench_settings,
    percentile,
    questions,
    synthetic_points,
)

from rag_core.embedding import Embedder
from rag_core.sparse import Bm25Encoder, SparseVector
from rag_core.store import VectorStore, Where

LIMIT = 30  # top_k 10 x candidate_multiplier 3 (the benchmark shape)

Query = tuple[list[float], SparseVector]


def build(store: VectorStore, base: BaseCorpus, n: int, dim: int) -> float:
    """Upsert `n` points in the batches `IndexWriter` uses; returns seconds (point generation excluded)."""
    store.ensure_collection(dim)
    spent = 0.0
    done = 0
    for batch in synthetic_points(base, n):
        started = time.perf_counter()
        store.upsert(batch)
        spent += time.perf_counter() - started
        done += len(batch)
        if done % 20480 < len(batch):
            print(f"  … {done} points, {spent:.1f} s", flush=True)
    store.write_meta({"generation": COMMITTED_GEN})
    return spent


@dataclass
class QuerySets:
    """Distinct questions: `cold` right after the store opens or changes, `warm` untimed, then `timed`."""

    cold: list[Query]
    warm: list[Query]
    timed: list[Query]


def time_queries(store: VectorStore, queries: list[Query], warm: Sequence[Query] = ()) -> list[float]:
    """Milliseconds per `store.search` call over `queries`, after untimed calls for `warm`."""
    where = Where.visible(COMMITTED_GEN, ALLOWED_SOURCES)
    for dense, sparse in warm:
        store.search(dense, sparse, LIMIT, where)
    out = []
    for dense, sparse in queries:
        started = time.perf_counter()
        dense_hits, _ = store.search(dense, sparse, LIMIT, where)
        out.append((time.perf_counter() - started) * 1000)
        assert dense_hits, "a query found nothing: the benchmark index is broken"
    return out


def summary(label: str, ms: list[float]) -> str:
    return f"{label:<44} p50 {percentile(ms, 50):8.2f} ms   p95 {percentile(ms, 95):8.2f} ms"


def edge_recall(store, queries: list[Query]) -> float:  # noqa: ANN001 - EdgeStore
    """Dense recall@30 of the HNSW search against exact search, same filter (approximation check)."""
    import qdrant_edge as qe

    from rag_core.store.edge import _filter

    flt = _filter(Where.visible(COMMITTED_GEN, ALLOWED_SOURCES))
    found = total = 0
    for dense, _ in queries:

        def ids(exact: bool, dense: list[float] = dense) -> set[str]:
            req = qe.QueryRequest(
                limit=LIMIT,
                query=qe.Query.Nearest(dense, using="dense"),
                filter=flt,
                params=qe.SearchParams(exact=exact),
            )
            return {str(p.id) for p in store.shard.query(req)}

        truth = ids(True)
        found += len(truth & ids(False))
        total += len(truth)
    return found / max(total, 1)


@contextmanager
def longest_stall() -> Iterator[list[float]]:
    """Longest time (s) a Python thread ticking every 5 ms went without running: shows a call holding the GIL."""
    result = [0.0]
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.005)
            now = time.perf_counter()
            result[0] = max(result[0], now - last)
            last = now

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()


def shard_state(store) -> str:  # noqa: ANN001 - EdgeStore
    info = store.shard.info()
    return (
        f"{info.points_count} points, {info.indexed_vectors_count} indexed vectors, "
        f"{info.segments_count} segments"
    )


def bench_edge(base: BaseCorpus, n: int, dim: int, qs: QuerySets, workdir: Path) -> dict[str, float]:
    from rag_core.store.edge import EdgeStore

    print(f"\nqdrant-edge (EdgeStore) — {n} points")
    store = EdgeStore(workdir / "edge" / "bench")
    upsert_s = build(store, base, n, dim)
    print(f"  upsert: {upsert_s:.1f} s ({n / upsert_s:,.0f} points/s); shard: {shard_state(store)}")
    raw = time_queries(store, qs.timed, qs.warm)
    print("  " + summary("query as loaded (no optimize), warm", raw))
    started = time.perf_counter()
    with longest_stall() as stall:
        changed = store.shard.optimize()
    optimize_s = time.perf_counter() - started
    print(
        f"  optimize(): {optimize_s:.1f} s (changed: {changed}); shard: {shard_state(store)}; "
        f"longest stall of another Python thread meanwhile: {stall[0]:.1f} s",
        flush=True,
    )
    cold = time_queries(store, qs.cold)
    print("  " + summary("query after optimize(), first ones", cold))
    opt = time_queries(store, qs.timed, qs.warm)
    print("  " + summary("query after optimize(), warm", opt))
    store.close()
    started = time.perf_counter()
    store = EdgeStore(workdir / "edge" / "bench")
    load_s = time.perf_counter() - started
    print(f"  reopen: {load_s:.2f} s; shard: {shard_state(store)}")
    reopened = time_queries(store, qs.cold)
    print("  " + summary("query after reopen, first ones", reopened))
    recall = edge_recall(store, qs.timed)
    print(f"  dense recall@{LIMIT} of HNSW vs exact search (same filter): {recall:.3f}")
    store.close()
    return {
        "build_s": upsert_s + optimize_s,
        "p50": percentile(opt, 50),
        "p95": percentile(opt, 95),
        "raw_p50": percentile(raw, 50),
        "raw_p95": percentile(raw, 95),
        "cold_p50": percentile(cold, 50),
        "cold_p95": percentile(cold, 95),
    }


def bench_local(
    base: BaseCorpus, n: int, n_local: int, dim: int, queries: list[Query], workdir: Path
) -> dict[str, float]:
    from qdrant_client import QdrantClient

    from rag_core.store.client import ClientStore

    print(f"\nqdrant-client local mode (ClientStore, path=) — build measured at {n_local} points")
    store = ClientStore(QdrantClient(path=str(workdir / "local")), "bench")
    upsert_s = build(store, base, n_local, dim)
    per_point = upsert_s / n_local
    print(f"  upsert: {upsert_s:.1f} s ({n_local / upsert_s:,.0f} points/s)")
    small = time_queries(store, queries[1:], queries[:1])
    print("  " + summary(f"query at {n_local} points (path=)", small))
    store.close()
    result = {"build_s": per_point * n, "build_measured": float(n_local == n)}
    if n_local == n:
        result |= {"p50": percentile(small, 50), "p95": percentile(small, 95)}
        return result
    # Local mode keeps every point in memory and searches it with the same code whatever the location, so a
    # `:memory:` collection at full size answers exactly like a `path=` one would (minus the slow persistence).
    print(f"  query at {n} points: `:memory:` client, same LocalCollection search code as path=")
    store = ClientStore(QdrantClient(location=":memory:"), "bench")
    mem_s = build(store, base, n, dim)
    print(f"  (in-memory upsert of {n} points: {mem_s:.1f} s — not a build figure, nothing persisted)")
    full = time_queries(store, queries[1:], queries[:1])
    print("  " + summary(f"query at {n} points (:memory:)", full))
    store.close()
    return result | {"p50": percentile(full, 50), "p95": percentile(full, 95)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000, help="points in each store (default 100000)")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per measurement")
    parser.add_argument(
        "--warmup", type=int, default=200, help="distinct untimed queries before warm figures"
    )
    parser.add_argument(
        "--local-points",
        type=int,
        default=10_000,
        help="build qdrant-client local mode (path=) at this many points and extrapolate linearly to --points",
    )
    parser.add_argument(
        "--local-queries",
        type=int,
        default=10,
        help="timed queries against local mode (brute force in Python: seconds per query at 100k)",
    )
    parser.add_argument("--base-chunks", type=int, default=3000, help="real handbook chunks to embed")
    parser.add_argument("--skip-local", action="store_true", help="only measure qdrant-edge")
    args = parser.parse_args(argv)

    settings = bench_settings()
    embedder = Embedder(settings)
    base = base_corpus(embedder, settings, args.base_chunks)
    sparse = Bm25Encoder(settings)
    texts = questions(base, 2 * args.queries + args.warmup)
    queries = [([float(x) for x in embedder.encode_query(q)], sparse.encode_query(q)) for q in texts]
    n, w = args.queries, args.warmup
    qs = QuerySets(cold=queries[:n], warm=queries[n : n + w], timed=queries[n + w :])
    import torch

    print(
        f"\n{args.points} points (dim {embedder.dim} + BM25), {n} queries after {w} warm-up, top {LIMIT}, "
        f"filter Where.visible({COMMITTED_GEN}, {ALLOWED_SOURCES}); torch threads {torch.get_num_threads()}"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-", dir=CACHE))
    try:
        edge = bench_edge(base, args.points, embedder.dim, qs, workdir)
        local = None
        if not args.skip_local:
            n_local = min(args.local_points, args.points)
            local_queries = qs.timed[: args.local_queries + 1]
            local = bench_local(base, args.points, n_local, embedder.dim, local_queries, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fmt: Callable[[float], str] = lambda s: f"{s:8.1f} s"  # noqa: E731
    print(f"\n=== {args.points} points, same run ===")
    print(
        f"qdrant-edge         build {fmt(edge['build_s'])} (upsert + optimize)   "
        f"query p50 {edge['p50']:7.2f} ms  p95 {edge['p95']:7.2f} ms"
    )
    print(
        f"  (first queries after optimize: p50 {edge['cold_p50']:7.2f} ms  p95 {edge['cold_p95']:7.2f} ms; "
        f"as EdgeStore leaves it, no optimize(): p50 {edge['raw_p50']:7.2f} ms  p95 {edge['raw_p95']:7.2f} ms)"
    )
    if local:
        note = (
            "" if local["build_measured"] else f" (extrapolated from {min(args.local_points, args.points)})"
        )
        print(
            f"qdrant-client local build {fmt(local['build_s'])}{note}   "
            f"query p50 {local['p50']:7.2f} ms  p95 {local['p95']:7.2f} ms"
            f"{'' if local['build_measured'] else ' (query on :memory:, same search code)'}"
        )
        print(
            f"ratio local / edge: build {local['build_s'] / edge['build_s']:.1f}x, "
            f"query p50 {local['p50'] / edge['p50']:.1f}x, p95 {local['p95'] / edge['p95']:.1f}x"
        )
    verdict = "meets" if edge["p95"] <= 10 else "misses"
    print(f"goal: query <= 10 ms — qdrant-edge p95 {edge['p95']:.2f} ms {verdict} it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
