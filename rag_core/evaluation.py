"""Retrieval quality on a BEIR dataset: dense, BM25, hybrid and hybrid + rerank, through the real engine parts."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.errors import UserError
from rag_core.permissions import Audience
from rag_core.retrieval import rrf_fuse
from rag_core.settings import Settings
from rag_core.store import Where
from rag_core.types import Candidate, Document

if TYPE_CHECKING:
    from rag_core.engine import Engine

MODES = ("dense", "bm25", "hybrid", "hybrid+rerank")


@dataclass(slots=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


@dataclass(slots=True)
class ModeResult:
    mode: str
    ndcg10: float
    recall100: float
    mrr10: float
    p10: float
    p50_ms: float
    p95_ms: float


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def beir_settings(settings: Settings, folder: Path) -> Settings:
    """A dataset's own index, beside the team's: `data/eval/<dataset>`, collection `beir`."""
    return settings.model_copy(
        update={"data_dir": settings.data_dir / "eval" / Path(folder).resolve().name, "collection": "beir"}
    )


def load_beir(folder: Path, split: str) -> BeirData:
    folder = Path(folder)
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    if not folder.is_dir():
        raise UserError(f"BEIR folder {folder} does not exist")
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise UserError(f"BEIR folder {folder} is missing {', '.join(missing)}")
    corpus = {d["_id"]: (d.get("title", ""), d.get("text", "")) for d in _jsonl(needed[0])}
    qrels: dict[str, dict[str, int]] = {}
    with open(needed[2], encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {q["_id"]: q["text"] for q in _jsonl(needed[1]) if q["_id"] in qrels}
    return BeirData(corpus, queries, qrels)


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def mrr_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if d in rel), 0.0)


def precision_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    return len([d for d in ranked[:k] if d in rel]) / k


def _doc_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Chunk-level ranking → document ranking (a document ranks at its best chunk)."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
    return list(seen)


def index_corpus(engine: Engine, data: BeirData, progress: Callable[[int], None] | None = None) -> None:
    """Index the corpus once per engine configuration; a second run reuses it."""
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                len(data.corpus),
                engine.settings.embedding_model,
                engine.chunker.max_tokens,
                engine.chunker.overlap,
                engine.settings.bm25_k1,
                engine.settings.bm25_b,
                engine.settings.bm25_avg_len,
            ]
        ).encode()
    ).hexdigest()[:16]
    if engine.store.read_meta().get("beir_fingerprint") == fingerprint:
        return
    writer = engine.index_writer()
    with writer.begin() as tx:
        for i, (doc_id, (title, text)) in enumerate(data.corpus.items()):
            tx.upsert(Document(id=doc_id, source="beir", title=title, text=text), "1")
            if progress and i % 100 == 0:
                progress(i)
    meta = engine.store.read_meta()
    meta["beir_fingerprint"] = fingerprint
    engine.store.write_meta(meta)


def evaluate(engine: Engine, data: BeirData, limit: int = 0, depth: int = 100) -> list[ModeResult]:
    """Each mode's metrics and latency over the split's queries.

    Latency counts the stages a mode needs (query embedding, BM25 encoding, the store's dense+BM25 search batch,
    fusion, rerank), each measured once per query."""
    gen = engine.index_version
    where = Where.visible(gen)
    rerank_k = engine.settings.top_k * engine.settings.candidate_multiplier
    rerank_k = max(rerank_k, 30)
    rankings: dict[str, dict[str, list[str]]] = {m: {} for m in MODES}
    latencies: dict[str, list[float]] = {m: [] for m in MODES}
    items = list(data.queries.items())[: limit or None]
    chunk_depth = depth * 2  # several chunks of one document can rank together
    for qid, text in items:
        # each stage runs once per query; a mode's latency is the sum of the stages it needs
        t0 = time.perf_counter()
        qvec = engine.embedder.encode_query(text)
        t1 = time.perf_counter()
        qsparse = engine.sparse.encode_query(text)
        t2 = time.perf_counter()
        dense, sparse = engine.store.search(qvec, qsparse, chunk_depth, where)
        t3 = time.perf_counter()
        fused = engine.retriever.fuse(qvec, dense, sparse, chunk_depth)
        t4 = time.perf_counter()
        timings: dict[str, float] = {}
        # the engine's own ranking path; below its head, the deeper hybrid ranking (documents dedupe to the best)
        # the terminal's evaluation sees every document, as its raw searches above do (no `readers` filter)
        head: list[Candidate] = engine.rank(
            text, limit=rerank_k, timings=timings, audience=Audience.operator()
        )
        embed_ms, sparse_ms, search_ms = (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000
        fuse_ms = (t4 - t3) * 1000
        runs: dict[str, tuple[list[str], float]] = {
            "dense": ([h.payload["doc_id"] for h in dense], embed_ms + search_ms),
            "bm25": ([h.payload["doc_id"] for h in sparse], sparse_ms + search_ms),
            "hybrid": ([c.chunk.doc_id for c in fused], embed_ms + sparse_ms + search_ms + fuse_ms),
            "hybrid+rerank": (
                [c.chunk.doc_id for c in head + fused],
                timings["retrieve"] + timings["rerank"],
            ),
        }
        for mode, (ranked, ms) in runs.items():
            latencies[mode].append(ms)
            rankings[mode][qid] = _doc_ranking(ranked)[:depth]
    results = []
    for mode in MODES:
        ranked_by_query = rankings[mode]
        qids = list(ranked_by_query)
        lat = sorted(latencies[mode])
        results.append(
            ModeResult(
                mode=mode,
                ndcg10=statistics.fmean(ndcg_at(ranked_by_query[q], data.qrels[q], 10) for q in qids),
                recall100=statistics.fmean(recall_at(ranked_by_query[q], data.qrels[q], 100) for q in qids),
                mrr10=statistics.fmean(mrr_at(ranked_by_query[q], data.qrels[q], 10) for q in qids),
                p10=statistics.fmean(precision_at(ranked_by_query[q], data.qrels[q], 10) for q in qids),
                p50_ms=lat[len(lat) // 2],
                p95_ms=lat[min(len(lat) - 1, int(len(lat) * 0.95))],
            )
        )
    return results


def format_results(results: list[ModeResult], n_queries: int, split: str) -> str:
    lines = [
        f"{'mode':<15} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'P@10':>6} {'p50 ms':>7} {'p95 ms':>7}"
        f"   ({n_queries} {split} queries)"
    ]
    for r in results:
        lines.append(
            f"{r.mode:<15} {r.ndcg10:8.4f} {r.recall100:7.4f} {r.mrr10:7.4f} {r.p10:6.4f} {r.p50_ms:7.1f} {r.p95_ms:7.1f}"
        )
    return "\n".join(lines)


__all__ = ["MODES", "evaluate", "format_results", "index_corpus", "load_beir", "rrf_fuse"]
