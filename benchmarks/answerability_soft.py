"""Adds the soft-match features (rag_core/soft_match.py) to recorded answerability features, once per dev set.

Reads FEATURES.jsonl (benchmarks/answerability_features.py), embeds each question, its quoted sentences and its top
source with the embedding model's token vectors, and writes FEATURES.words.pkl beside it (content words and their
vectors per question) for benchmarks/answerability_loco.py. No retrieval, no index: only the model.

    PYTHONPATH=. python benchmarks/answerability_soft.py data/features/18f.jsonl
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
from rag_core.soft_match import Words, evidence_words  # noqa: E402
from rag_core.sparse import Bm25Encoder  # noqa: E402


def words_path(features: Path) -> Path:
    return features.with_suffix(".words.pkl")


def main() -> int:
    settings = get_settings()
    embedder = Embedder(settings)
    sparse = Bm25Encoder(settings)
    # --block-chars=N: read only the first N characters of each source (cost experiments)
    chars = [int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--block-chars=")]
    for arg in [a for a in sys.argv[1:] if not a.startswith("--")]:
        path = Path(arg)
        out: dict[str, dict[str, list[Words]]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            ev = row.get("evidence")
            if not ev:
                continue
            out[ev["question"]] = evidence_words(
                ev["question"], ev["quoted"], ev["blocks"], embedder.encode_tokens, sparse, *chars
            )
        words_path(path).write_bytes(pickle.dumps(out))
        print(f"{path}: {len(out)} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
