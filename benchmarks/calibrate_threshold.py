"""Calibrates the relevance threshold on SciFact's train split (the test split is never looked at).

Positives: for each train query, the relevance of its best relevant chunk, as the reranker scores it among the
hybrid candidates. Negatives: the relevance of the top candidate when the answer is NOT in the index — the same
queries against the bundled sample knowledge base (company wiki pages), plus company questions against SciFact.
Prints both distributions and the threshold that keeps 95 % of positives, with the share of negatives it lets
through. Run after `ragbot eval --beir ../shared/eval/scifact --split train` has built the index.

    python benchmarks/calibrate_threshold.py [--beir ../shared/eval/scifact] [--limit 400]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from rag_core.engine import Engine
from rag_core.evaluation import beir_settings, index_corpus, load_beir
from rag_core.settings import get_settings
from rag_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
COMPANY_QUESTIONS = [
    "How do I get paged when I'm on call?",
    "What is the limit for a team dinner on expenses?",
    "How do I reset my VPN?",
    "Who approves a production deploy on Fridays?",
    "What is our parental leave policy?",
    "How many vacation days do new hires get?",
    "Where do I find the incident severity levels?",
    "How do I request a new laptop?",
    "What is the company's stock ticker symbol?",
    "When is the next all-hands meeting?",
]


def best_relevance(engine: Engine, question: str) -> tuple[float, list]:
    ranked = engine.rank(question)
    return max((c.relevance or 0.0 for c in ranked), default=0.0), ranked


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beir", default=str(ROOT.parent / "shared" / "eval" / "scifact"))
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()

    base = get_settings()
    folder = Path(args.beir)
    data = load_beir(folder, "train")
    settings = beir_settings(base, folder)
    scifact = Engine.from_settings(settings)
    index_corpus(scifact, data)

    positives: list[float] = []
    for qid, question in list(data.queries.items())[: args.limit]:
        _, ranked = best_relevance(scifact, question)
        rel = [c.relevance or 0.0 for c in ranked if c.chunk.doc_id in data.qrels[qid]]
        if rel:  # the relevant document was retrieved: its score is what the threshold must let through
            positives.append(max(rel))

    negatives = [best_relevance(scifact, q)[0] for q in COMPANY_QUESTIONS]
    with tempfile.TemporaryDirectory() as tmp:
        from connectors import sample_sources
        from connectors.sync import run_sync

        sample_settings = settings.model_copy(
            update={"data_dir": Path(tmp), "collection": "samples", "sources": sample_sources(ROOT)}
        )
        samples = Engine(
            sample_settings,
            store=open_store(sample_settings),
            embedder=scifact.embedder,
            reranker=scifact.reranker,
            kv=scifact.kv,
        )
        run_sync(sample_settings, samples.index_writer())
        negatives += [best_relevance(samples, q)[0] for q in list(data.queries.values())[: args.limit]]
        samples.close()

    threshold = pct(positives, 0.05)
    passed = sum(n >= threshold for n in negatives) / len(negatives)
    print(f"reranker: {scifact.reranker.name}")
    print(
        f"positives (relevant chunk retrieved): n={len(positives)} median={statistics.median(positives):.3f} "
        f"p5={pct(positives, 0.05):.3f} p10={pct(positives, 0.10):.3f}"
    )
    print(
        f"negatives (answer not indexed):      n={len(negatives)} median={statistics.median(negatives):.3f} "
        f"p95={pct(negatives, 0.95):.3f} max={max(negatives):.3f}"
    )
    print(f"threshold keeping 95% of positives: {threshold:.3f}; negatives above it: {passed:.1%}")
    for t in (0.25, 0.3, 0.35, 0.4, 0.45):
        kept = sum(p >= t for p in positives) / len(positives)
        leak = sum(n >= t for n in negatives) / len(negatives)
        print(f"  threshold {t:.2f}: keeps {kept:.1%} of positives, lets {leak:.1%} of negatives through")
    scifact.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
