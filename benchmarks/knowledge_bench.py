"""Save-to-cited latency of a curated answer: store it and sync just the curated source (what a chat save or
`ragbot knowledge add` waits for), against one uncached answer over the same index, measured in the same run.

    .venv/bin/python benchmarks/knowledge_bench.py [--answers 20]

Prints p50/max of save+sync as the curated source grows to N answers, the p50 of one uncached answer, and the
ratio. No goal is asserted: a save should cost about one answer, whatever the number of answers already saved
(unchanged ones are not re-embedded).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from connectors.curated import sync_curated
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from rag_core.settings import Settings
from rag_core.types import Document


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=20)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="knowledge-bench-"))
    settings = Settings(
        _env_file=None, data_dir=data, rerank_model="", embedding_backend="fp32", log_json=False
    )
    engine = Engine.from_settings(settings)
    with engine.index_writer().begin() as tx:
        for i in range(20):
            tx.upsert(Document(id=f"p{i}", source="wiki", title=f"Page {i}", text=f"Topic {i} " * 50), "v1")
    store = FeedbackStore.from_settings(settings)
    saves, asks = [], []
    for n in range(1, args.answers + 1):
        started = time.perf_counter()
        cur.add_answer(
            store, f"How do I get parking badge number {n}?", f"Ask Maria at desk {n}.", author="Dana"
        )
        report = sync_curated(store, settings, engine.index_writer())
        saves.append((time.perf_counter() - started) * 1000)
        assert report.ok and report.added == 1, report.summary()
        started = time.perf_counter()
        engine.answer(f"question {n} about topic {n}?")
        asks.append((time.perf_counter() - started) * 1000)
    store.close()
    engine.close()
    save, ask = statistics.median(saves), statistics.median(asks)
    print(
        f"save + sync of one curated answer (1..{args.answers} saved): p50 {save:.0f} ms, max {max(saves):.0f} ms"
    )
    print(f"one uncached answer, same index: p50 {ask:.0f} ms")
    print(f"ratio save / answer: {save / ask:.2f}")


if __name__ == "__main__":
    main()
