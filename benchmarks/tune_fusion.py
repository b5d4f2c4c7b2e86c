"""Tunes the hybrid fusion on SciFact's TRAIN split: searches once per query, then scores fusion settings offline.

    python benchmarks/tune_fusion.py [--beir ../shared/eval/scifact] [--split train]
Needs the index `ragbot eval --beir ...` builds (same data dir and settings).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag_core.engine import Engine
from rag_core.evaluation import _doc_ranking, beir_settings, index_corpus, load_beir, ndcg_at, recall_at
from rag_core.rerank import FusionReranker
from rag_core.settings import get_settings
from rag_core.store import Hit, Where

# (question, query vector, dense hits, BM25 hits) → chunk-level ranking of document ids
RankFn = Callable[[str, np.ndarray, list[Hit], list[Hit]], list[str]]

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beir", default=str(ROOT.parent / "shared" / "eval" / "scifact"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="dense weights to try")
    parser.add_argument("--depths", default="30,50", help="reranked candidate depths to try")
    args = parser.parse_args()
    base = get_settings()
    folder = Path(args.beir)
    data = load_beir(folder, args.split)
    settings = beir_settings(base, folder)
    engine = Engine.from_settings(settings)
    index_corpus(engine, data)
    where = Where.visible(engine.index_version)
    searched = []
    for qid, text in list(data.queries.items())[: args.limit or None]:
        qvec = engine.embedder.encode_query(text)
        dense, sparse = engine.store.search(qvec, engine.sparse.encode_query(text), 200, where)
        searched.append((qid, text, qvec, dense, sparse))
    print(f"{len(searched)} {args.split} queries searched")

    def score(rank_fn: RankFn) -> tuple[float, float]:
        nd, rc = [], []
        for qid, text, qvec, dense, sparse in searched:
            ranked = _doc_ranking(rank_fn(text, qvec, dense, sparse))[:100]
            nd.append(ndcg_at(ranked, data.qrels[qid], 10))
            rc.append(recall_at(ranked, data.qrels[qid], 100))
        return statistics.fmean(nd), statistics.fmean(rc)

    print(
        "dense  nDCG@10 {:.4f} R@100 {:.4f}".format(
            *score(lambda t, q, d, s: [h.payload["doc_id"] for h in d])
        )
    )
    print(
        "bm25   nDCG@10 {:.4f} R@100 {:.4f}".format(
            *score(lambda t, q, d, s: [h.payload["doc_id"] for h in s])
        )
    )
    for k in (10, 20, 60):
        engine.retriever.rrf_k = k
        nd, rc = score(lambda t, q, d, s: [c.chunk.doc_id for c in engine.retriever.fuse(q, d, s, 200)])
        print(f"rrf k={k:<3} nDCG@10 {nd:.4f} R@100 {rc:.4f}")
    engine.retriever.rrf_k = settings.rrf_k
    for depth in [int(x) for x in args.depths.split(",")]:
        for w in [float(x) for x in args.weights.split(",")]:
            fusion = FusionReranker(w, settings.min_relevance)

            def ranked(
                t: str,
                q: np.ndarray,
                d: list[Hit],
                s: list[Hit],
                fusion: FusionReranker = fusion,
                depth: int = depth,
            ) -> list[str]:
                fused = engine.retriever.fuse(q, d, s, 200)
                return [c.chunk.doc_id for c in fusion.rerank(t, fused[:depth]) + fused[depth:]]

            nd, rc = score(ranked)
            print(f"fusion depth={depth:<3} w={w:.2f} nDCG@10 {nd:.4f} R@100 {rc:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
