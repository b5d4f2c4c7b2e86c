"""Freeze benchmark: answer latency while a large sync writes and optimizes the embedded index.

An engine over the bundled samples (real embeddings) answers questions in a loop — retrieval, score-fusion
rerank, threshold, extractive answer: the bot's path without an LLM. Meanwhile one sync transaction writes N
synthetic chunks (one short document each) and commits, which triggers the HNSW rebuild (`optimize_after_points`).
The synthetic chunks get random unit vectors instead of embeddings: embedding time is not what is measured here,
and real embedding would take the GIL-bound CPU this benchmark is about away from the answers either way.

Prints answer latency p50/p95/max idle, during the writes, and during the optimize, and the ratio of the p95
during the whole sync to idle. Goal: <= 2x. `--in-process` runs the old in-process `EdgeShard.optimize()` for
comparison (it holds the GIL: answers stop for its whole duration).

    .venv/bin/python benchmarks/freeze_bench.py [--chunks 20480] [--in-process]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors import sample_sources
from connectors.sync import run_sync
from rag_core.engine import Engine
from rag_core.settings import Settings
from rag_core.store.edge import EdgeStore
from rag_core.types import Document

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "How do I get paged when I'm on call?",
    "What is the limit for a team dinner on expenses?",
    "How do I deploy to production?",
    "What are the incident severity levels?",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<22} n={len(values):>5}  p50 {percentile(values, 50):7.1f} ms  p95 {percentile(values, 95):7.1f} ms"
        f"  max {max(values, default=float('nan')):8.1f} ms"
    )


class Asker(threading.Thread):
    """Asks questions back to back (each one new, so no cache hit) and records (start time, latency ms)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            question = f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"
            started = time.perf_counter()
            self.engine.answer(question)
            self.samples.append((started, (time.perf_counter() - started) * 1000))
            i += 1
            time.sleep(0.02)  # a busy bot, not a tight loop


def synthetic_sync(engine: Engine, chunks: int, dim: int, marks: dict[str, float]) -> None:
    """One transaction writing `chunks` one-chunk documents with random unit vectors, then its commit."""
    rng = np.random.default_rng(7)

    def random_vectors(texts: list[str]) -> np.ndarray:
        vectors = rng.standard_normal((len(texts), dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    engine.embedder.encode_passages = random_vectors  # type: ignore[method-assign]
    store = engine.store
    optimize = store.optimize

    def timed_optimize() -> None:
        marks["optimize_start"] = time.perf_counter()
        optimize()
        marks["optimize_end"] = time.perf_counter()

    store.optimize = timed_optimize  # type: ignore[method-assign]
    marks["sync_start"] = time.perf_counter()
    with engine.index_writer().begin() as tx:
        for i in range(chunks):
            doc = Document(
                id=f"synthetic-{i}",
                source="bulk",
                title=f"Synthetic page {i}",
                text=f"Record {i}: quarterly figures for team {i % 97} and project {i % 89}.",
                url=f"https://example.com/bulk/{i}",
            )
            tx.upsert(doc, "v1")
    marks["sync_end"] = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20480)
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds of idle answers measured first")
    parser.add_argument("--in-process", action="store_true", help="optimize in this process (the old way)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="freeze-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            sources=sample_sources(ROOT),
            log_json=False,
            log_level="WARNING",
            optimize_after_points=min(20_000, args.chunks),
        )
        engine = Engine.from_settings(settings)
        run_sync(settings, engine.index_writer())
        if args.in_process:
            store = engine.store
            assert isinstance(store, EdgeStore)
            store.optimize = lambda: store.shard.optimize()  # type: ignore[method-assign]
        for question in QUESTIONS:
            engine.answer(question)  # warm up
        asker = Asker(engine)
        asker.start()
        time.sleep(args.idle_s)
        marks: dict[str, float] = {}
        idle_end = time.perf_counter()
        synthetic_sync(engine, args.chunks, engine.embedder.dim, marks)
        asker.stop.set()
        asker.join()
        engine.close()

    idle = [ms for t, ms in asker.samples if t < idle_end]
    during = [ms for t, ms in asker.samples if t >= marks["sync_start"]]
    writes = [ms for t, ms in asker.samples if marks["sync_start"] <= t < marks.get("optimize_start", 0)]
    optimizing = [
        ms for t, ms in asker.samples if marks.get("optimize_start", 1e18) <= t < marks.get("optimize_end", 0)
    ]
    # an answer stuck behind a frozen GIL is recorded when it finally ends; count the gap too
    gaps = [b[0] - (a[0] + a[1] / 1000) for a, b in zip(asker.samples, asker.samples[1:], strict=False)]
    print(
        f"sync of {args.chunks} synthetic chunks (random vectors, no embedding time); "
        f"optimize {'in this process' if args.in_process else 'in a child process, swapped in'}"
    )
    print(
        f"  writes {marks.get('optimize_start', marks['sync_end']) - marks['sync_start']:.1f} s, "
        f"optimize {marks.get('optimize_end', 0) - marks.get('optimize_start', 0):.1f} s"
    )
    print(summary("idle", idle))
    print(summary("during writes", writes))
    print(summary("during optimize", optimizing))
    print(summary("during whole sync", during))
    print(f"longest gap between answers: {max(gaps, default=0) * 1000:.0f} ms")
    ratio = percentile(during, 95) / percentile(idle, 95)
    print(f"p95 during sync / idle p95 = {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
