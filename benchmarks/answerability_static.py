"""Adds the static-word soft-match evidence (rag_core/soft_match.static_words: each word's own vector, no context)
to recorded answerability features, once per dev set.

Reads FEATURES.jsonl (benchmarks/answerability_features.py), reads the vector of every word of each question, its
quoted sentences and its top sources (Embedder.word_vectors: the model's input embeddings, no forward pass), and
writes FEATURES.static.pkl beside it for benchmarks/answerability_loco.py. No retrieval, no index.

    PYTHONPATH=. python benchmarks/answerability_static.py data/features/{handbook,18f,scifact}.jsonl
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag_core.embedding import Embedder  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402
from rag_core.soft_match import Words, evidence_static_words  # noqa: E402
from rag_core.sparse import Bm25Encoder  # noqa: E402


def static_path(features: Path) -> Path:
    return features.with_suffix(".static.pkl")


def main() -> int:
    settings = get_settings().model_copy(update={"token_cache_mb": 1024})
    embedder = Embedder(settings)
    sparse = Bm25Encoder(settings)
    for arg in sys.argv[1:]:
        path = Path(arg)
        out: dict[str, dict[str, list[Words]]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            ev = json.loads(line).get("evidence")
            if ev:
                out[ev["question"]] = evidence_static_words(
                    ev["question"], ev["quoted"], ev["blocks"], embedder.word_vectors, sparse
                )
        static_path(path).write_bytes(pickle.dumps(out))
        print(f"{path}: {len(out)} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
