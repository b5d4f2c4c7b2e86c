"""Do bf16 embeddings (served where the CPU has native bf16) move the relevance gaps of the answerability score
enough to change its decision? Read from recorded evidence only (benchmarks/answerability_features.py).

For each question: the cosine of the question with each candidate of its pool, in fp32 (as fitted) and with a bf16
copy of the model (`TorchBackend(bf16=True)`, both sides); the difference on the candidates ranked first by fp32 is
added to the recorded relevances, and the shipped score (WEIGHTS, the default threshold) is computed both ways.
benchmarks/answerability_precision.py covers the token vectors; this covers the relevances.

    RAG_EMBEDDING_BACKEND=fp32 PYTHONPATH=. python benchmarks/answerability_relevance_bf16.py \
        data/features/{handbook,18f,scifact}.jsonl
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import answerability_loco as loco  # noqa: E402

from rag_core.answerability import _GAP_SCALE, WEIGHTS, score  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.embedding_backends import TorchBackend  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402
from rag_core.sparse import Bm25Encoder  # noqa: E402


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def main() -> int:
    settings = get_settings()
    sparse = Bm25Encoder(settings)
    embedder = Embedder(settings)
    fp32 = TorchBackend(embedder._model)
    bf16 = TorchBackend(copy.deepcopy(embedder._model), bf16=True)  # .to() converts in place: a copy
    t = settings.answerability_min
    for arg in sys.argv[1:]:
        path = Path(arg)
        rows = loco.load(path, sparse)
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        diffs, flips, near = [], 0, 0
        for row, d in zip(rows, lines, strict=True):
            if not row.reached:
                continue
            ev = d["evidence"]
            texts = [ev["question"], *ev["pool"]]
            a, b = _unit(fp32.encode(texts, 32)), _unit(bf16.encode(texts, 32))
            c32, c16 = a[1:] @ a[0], b[1:] @ b[0]
            order = np.argsort(-c32)[: len(ev["relevances"])]
            rel = sorted(ev["relevances"], reverse=True)
            served = sorted(
                (x + float(dx) for x, dx in zip(rel, c16[order] - c32[order], strict=False)), reverse=True
            )
            moved = dict(row.feats, relevance=served[0])
            if len(served) > 1:
                moved["top_over_rest"] = _GAP_SCALE * (served[0] - float(np.mean(served[1:])))
                moved["relevance_spread"] = _GAP_SCALE * (served[0] - served[-1])
            fitted, now = score(row.feats, WEIGHTS), score(moved, WEIGHTS)
            diffs.append(abs(now - fitted))
            flips += (fitted < t) != (now < t)
            near += abs(fitted - t) < 0.005
        print(
            f"{path.stem}: {flips} of {len(diffs)} decisions flip at {t}; |score difference| max {max(diffs):.4f}, "
            f"median {float(np.median(diffs)):.5f}; {near} questions within 0.005 of the threshold"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
