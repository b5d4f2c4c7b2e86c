"""Per-answer cost of the answerability check's embeddings, each way the score can read them, against a whole
quoted-passage answer with the check off, all measured in the same run.

For the recorded evidence of the first N questions of a features file (benchmarks/answerability_features.py),
medians of CPU time (process time: every thread torch uses counts) and wall time, in ms:

- shipped, nothing cached: contextual token vectors of the question with the quoted sentences, and of the top
  source (`RAG_TOKEN_CACHE_MB` emptied before each question);
- shipped, top source cached: the same with the top source's vectors kept (questions asked together);
- sentence similarity only (the check before soft matching);
- cheap check, cold: every word's own vector embedded (empty word cache: a bot's first answers on a corpus);
- cheap check, warm: the same once the corpus's words were seen (steady state: each word is embedded once);
- cheap check from a cold start over every question of the file in order (how fast the words are all seen);
- the features and score from the embeddings (the same for every way, pure Python/numpy);
- reference: a whole quoted-passage answer with the check off (`Engine.answer`, index of RAG_DATA_DIR).

The machine may be shared, so read the ratios to the reference.

    RAG_DATA_DIR=data/idx/18f PYTHONPATH=. python benchmarks/answerability_cost.py data/features/18f.jsonl 30
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_core.answerability import CHEAP_WEIGHTS, Evidence, answerability
from rag_core.engine import Engine
from rag_core.settings import get_settings
from rag_core.soft_match import evidence_static_words, evidence_words


def _ms(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU ms, wall ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def main() -> int:
    path, n = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 30
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    evidence = [Evidence.from_json(r["evidence"]) for r in rows if r.get("evidence")][:n]
    settings = get_settings().model_copy(update={"redis_url": None, "answerability_min": 0.0})
    engine = Engine.from_settings(settings)
    engine.score_answerability = False
    emb, sparse = engine.embedder, engine.sparse
    engine.answer("A question to warm up with?")  # model load, first batch

    def forget() -> None:  # the token and word caches, emptied
        emb._tokens.clear()
        emb._words.clear()

    def shipped(ev: Evidence) -> None:
        short = emb.encode_tokens([ev.question, *ev.quoted])
        [emb.pooled(t) for t in short]
        evidence_words(ev.question, ev.quoted, ev.blocks[:1], emb.encode_tokens, sparse, short_tokens=short)

    def cheap(ev: Evidence) -> None:
        evidence_static_words(ev.question, ev.quoted, ev.blocks[:1], emb.word_vectors, sparse)

    times: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("uncached", "top cached", "sims", "cold", "warm", "features", "answer")
    }
    for ev in evidence:
        # first, so that nothing of this question is embedded yet
        times["answer"].append(_ms(lambda ev=ev: engine.answer(ev.question)))
        forget()
        times["uncached"].append(_ms(lambda ev=ev: shipped(ev)))
        forget()
        emb.encode_tokens(ev.blocks[:1])
        times["top cached"].append(_ms(lambda ev=ev: shipped(ev)))
        forget()
        emb.encode_query(ev.question)  # retrieval embedded the question already
        times["sims"].append(_ms(lambda ev=ev: emb.encode_passages(ev.quoted) if ev.quoted else None))
        forget()
        times["cold"].append(_ms(lambda ev=ev: cheap(ev)))
    # a bot that just started: every question of the file in order, words kept from one answer to the next
    everything = [Evidence.from_json(r["evidence"]) for r in rows if r.get("evidence")]
    forget()
    in_order = [_ms(lambda ev=ev: cheap(ev))[0] for ev in everything]
    forget()
    for ev in evidence:  # the corpus's words seen once
        cheap(ev)
    for ev in evidence:
        times["warm"].append(_ms(lambda ev=ev: cheap(ev)))
        ev.static = evidence_static_words(ev.question, ev.quoted, ev.blocks[:1], emb.word_vectors, sparse)
        times["features"].append(_ms(lambda ev=ev: answerability(ev, sparse, CHEAP_WEIGHTS)))
    ref = statistics.median(c for c, _ in times["answer"])
    labels = {
        "uncached": "shipped check, nothing cached",
        "top cached": "shipped check, top source's token vectors cached",
        "sims": "sentence similarity only (check before soft matching)",
        "cold": "cheap check, words never seen (cold)",
        "warm": "cheap check, the corpus's words seen once (warm)",
        "features": "features and score (cheap check)",
        "answer": "reference: whole quoted-passage answer, check off",
    }
    print(f"{len(evidence)} questions of {path}; medians, CPU ms / wall ms / CPU ratio to the reference:")
    for key, label in labels.items():
        cpu = statistics.median(c for c, _ in times[key])
        wall = statistics.median(w for _, w in times[key])
        print(f"  {label:55s} {cpu:8.1f} {wall:8.1f} {cpu / ref:6.2f}")
    k = max(len(in_order) // 4, 1)
    print(
        f"  cheap check from a cold start, all {len(in_order)} questions in order: CPU ms median of the first {k} "
        f"{statistics.median(in_order[:k]):.1f}, of the last {k} {statistics.median(in_order[-k:]):.1f}, "
        f"mean {statistics.mean(in_order):.1f}"
    )
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
