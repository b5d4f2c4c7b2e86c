"""Per-answer cost of soft term matching (rag_core/soft_match.py), against what the answer already pays.

For the recorded evidence of the first N questions of a features file (benchmarks/answerability_features.py):
the time of `evidence_words` (token vectors of the question, the quoted sentences and the top source, then the
content words) and, measured in the same run on the same texts, the sentence-similarity embedding the check
already did and a whole quoted-passage answer (`Engine.answer` with the check on, index of RAG_DATA_DIR).
Medians in ms and the ratios; the machine may be shared, so read the ratios.

    RAG_DATA_DIR=data/idx/18f PYTHONPATH=. python benchmarks/answerability_cost.py data/features/18f.jsonl 30
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_core.answerability import Evidence, features, sentence_similarities
from rag_core.engine import Engine
from rag_core.settings import get_settings
from rag_core.soft_match import evidence_words


def _ms(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> int:
    path, n = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 30
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    evidence = [Evidence.from_json(r["evidence"]) for r in rows if r.get("evidence")][:n]
    engine = Engine.from_settings(get_settings().model_copy(update={"redis_url": None}))
    emb, sparse = engine.embedder, engine.sparse
    engine.answer(evidence[0].question)  # warm up (model load, first batch)
    words, sims, feats, answers = [], [], [], []
    for ev in evidence:
        words.append(
            _ms(
                lambda ev=ev: evidence_words(ev.question, ev.quoted, ev.blocks[:1], emb.encode_tokens, sparse)
            )
        )
        sims.append(
            _ms(
                lambda ev=ev: sentence_similarities(
                    ev.question, ev.quoted, emb.encode_query, emb.encode_passages
                )
            )
        )
        ev.words = evidence_words(ev.question, ev.quoted, ev.blocks[:1], emb.encode_tokens, sparse)
        feats.append(_ms(lambda ev=ev: features(ev, sparse)))
        answers.append(_ms(lambda ev=ev: engine.answer(ev.question)))
    med = {
        k: statistics.median(v)
        for k, v in {"words": words, "sims": sims, "feats": feats, "answer": answers}.items()
    }
    print(f"{len(evidence)} questions of {path}; medians:")
    print(f"  soft matching token vectors + words: {med['words']:.1f} ms (added per answer)")
    print(f"  features incl. soft matching: {med['feats']:.2f} ms")
    print(f"  reference, sentence-similarity embedding already done: {med['sims']:.1f} ms")
    print(f"  reference, whole quoted-passage answer with the check on: {med['answer']:.1f} ms")
    print(
        f"  ratio added / sentence similarity: {med['words'] / med['sims']:.2f}; "
        f"added / whole answer: {med['words'] / med['answer']:.2f}"
    )
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
