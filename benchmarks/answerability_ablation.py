"""Question ablation (specificity) as an answerability signal, compared leave-one-corpus-out (issue 20 experiment).

For an unanswerable but on-topic question ("per diem for Japan" next to the travel policy) the word that says what is
asked is absent from the source, so dropping it from the question should not lower the question's similarity to the
top source; for an answerable one, dropping its rarest content word should. Per recorded answer (no retrieval): the
question and variants without its one or two rarest content words (rarity among the question's candidates, as
answerability.features weighs them) are embedded with the index's model next to the top source and the quoted
sentences; the drops in cosine become features, cached in FEATURES.ablation.pkl, and candidate sets (the shipped
one plus ablation features) run through benchmarks/answerability_loco.py's comparison.

    RAG_EMBEDDING_BACKEND=fp32 PYTHONPATH=. python benchmarks/answerability_ablation.py \
        data/features/{handbook,18f,scifact}.jsonl
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import answerability_loco as loco  # noqa: E402

from rag_core.answerability import term_weights  # noqa: E402
from rag_core.grounding import content_terms  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402
from rag_core.soft_match import _WORD, _word_terms  # noqa: E402
from rag_core.sparse import Bm25Encoder  # noqa: E402

SHIPPED = loco.FEATURE_SETS["soft sentence+quoted+top+top over pool"]
# Cosine drops are a few hundredths; scaled to about the [0, 1] range of the other features so that the fit's L2
# penalty (benchmarks/answerability_loco.py) does not hold their weights near 0.
SCALE = 10.0


def rare_words(question: str, pool: list[str], sparse: Bm25Encoder) -> list[str]:
    """The question's content words (surface forms, one per stem set), rarest among its candidates first."""
    weights = term_weights(content_terms(question, sparse), [content_terms(t, sparse) for t in pool])
    seen: dict[frozenset[int], tuple[str, float]] = {}
    for m in _WORD.finditer(question):
        ids = _word_terms(sparse, m.group(0))
        if ids and ids not in seen:
            seen[ids] = (m.group(0), max(weights.get(t, 0.0) for t in ids))
    return [w for w, _ in sorted(seen.values(), key=lambda x: -x[1])]


def without(question: str, words: list[str]) -> str:
    for w in words:
        question = re.sub(rf"(?<![\w'-]){re.escape(w)}(?![\w'-])", " ", question)
    return re.sub(r"\s+", " ", question).strip()


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def ablation_features(ev: dict[str, Any], encode: Any, sparse: Bm25Encoder) -> dict[str, float]:
    q = ev["question"]
    rare = rare_words(q, ev.get("pool") or ev["blocks"], sparse)
    variants = [q]
    if rare:
        variants += [without(q, rare[:1])]
        variants += [without(q, rare[1:2])] if len(rare) > 1 else [variants[1]]
        variants += [without(q, rare[:2])] if len(rare) > 1 else [variants[1]]
    else:
        variants += [q, q, q]
    quoted = list(ev["quoted"]) or [""]
    top = ev["blocks"][0] if ev["blocks"] else ""
    pool = list(ev.get("pool") or [])
    vec = unit(encode(variants + [top] + quoted + pool))
    vq, vtop = vec[:4], vec[4]
    vs = vec[5 : 5 + len(quoted)]
    vp = vec[5 + len(quoted) :]
    c_top = vq @ vtop  # full, minus rarest, minus second rarest, minus both
    c_s = vq @ vs.T  # (4, sentences)
    best = int(np.argmax(c_s[0]))
    out = {
        "abl_top1": float(c_top[0] - c_top[1]),
        "abl_top2": float(c_top[0] - c_top[3]),
        "abl_top_min": float(min(c_top[0] - c_top[1], c_top[0] - c_top[2])),
        "abl_sent1": float(c_s[0, best] - c_s[1, best]),
        "abl_sent2": float(c_s[0, best] - c_s[3, best]),
        "abl_sent_min": float(min(c_s[0, best] - c_s[1, best], c_s[0, best] - c_s[2, best])),
        # the best sentence for the ablated question, not the one the full question picked
        "abl_sentmax1": float(c_s[0].max() - c_s[1].max()),
        "abl_top_rel1": float((c_top[0] - c_top[1]) / max(float(c_top[0]), 1e-3)),
    }
    if len(vp):
        # scale-free: the top source's drop against the median candidate's drop for the same question
        c_p = vq @ vp.T  # (4, pool)
        out["abl_top_over_pool1"] = out["abl_top1"] - float(np.median(c_p[0] - c_p[1]))
        out["abl_top_over_pool2"] = out["abl_top2"] - float(np.median(c_p[0] - c_p[3]))
        # how far the top source's similarity stands above the pool's, with and without the rare word
        out["abl_rank_drop1"] = float((c_top[0] - np.median(c_p[0])) - (c_top[1] - np.median(c_p[1])))
    return out


def cohesion_features(ev: dict[str, Any], sparse: Bm25Encoder) -> dict[str, float]:
    """A second idea, no model at all: how many words the candidates share (an answerable question's candidates
    may cluster on its answer, an unanswerable one's spread over the topic); scaled like the ablation features."""
    terms = [content_terms(t, sparse) for t in ev.get("pool") or ev["blocks"]]
    jac = [len(a & b) / max(1, len(a | b)) for i, a in enumerate(terms) for b in terms[i + 1 :]]
    return {"pool_jacc": 10.0 * (float(np.mean(jac)) if jac else 0.0)}


def build(path: Path, sparse: Bm25Encoder) -> dict[str, dict[str, float]]:
    cache = path.with_suffix(".ablation.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from rag_core.embedding import Embedder

    embedder = Embedder(get_settings())
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d["threshold_abstained"] or not d.get("evidence"):
            continue
        ev = d["evidence"]
        out[ev["question"]] = ablation_features(ev, embedder.encode_passages, sparse)
    cache.write_bytes(pickle.dumps(out))
    print(f"{path}: {len(out)} questions ablated", flush=True)
    return out


ABL_SETS: dict[str, list[str]] = {
    "shipped + pool cohesion": SHIPPED + ["pool_jacc"],
    # the relevance gaps of rag_core.answerability.features (what won, in answerability_loco.py), and with others
    "shipped + relevance spread": SHIPPED + ["relevance_spread"],
    "shipped + top over rest": SHIPPED + ["top_over_rest"],
    "shipped + top over rest + spread": SHIPPED + ["top_over_rest", "relevance_spread"],
    "shipped + top over rest + spread + cohesion": SHIPPED
    + ["top_over_rest", "relevance_spread", "pool_jacc"],
    "shipped + top over rest + spread + abl top2": SHIPPED
    + ["top_over_rest", "relevance_spread", "abl_top2"],
    "shipped + top over rest + spread + abl sent2": SHIPPED
    + ["top_over_rest", "relevance_spread", "abl_sent2"],
    "shipped + abl top": SHIPPED + ["abl_top1", "abl_top_min"],
    "shipped + abl top2": SHIPPED + ["abl_top1", "abl_top2"],
    "shipped + abl sent": SHIPPED + ["abl_sent1", "abl_sent_min"],
    "shipped + abl sentmax": SHIPPED + ["abl_sentmax1"],
    "shipped + abl sent2": SHIPPED + ["abl_sent2"],
    "shipped + abl top2 only": SHIPPED + ["abl_top2"],
    "shipped + abl sent2+top2": SHIPPED + ["abl_sent2", "abl_top2"],
    "shipped + abl top+sent": SHIPPED + ["abl_top1", "abl_top_min", "abl_sent1", "abl_sent_min"],
    "shipped + abl rel": SHIPPED + ["abl_top_rel1"],
    "shipped + abl over pool": SHIPPED + ["abl_top_over_pool1", "abl_top_over_pool2"],
    "shipped + abl rank drop": SHIPPED + ["abl_rank_drop1"],
    "shipped + abl all": SHIPPED
    + [
        "abl_top1",
        "abl_top2",
        "abl_top_min",
        "abl_sent1",
        "abl_sent2",
        "abl_sent_min",
        "abl_top_over_pool1",
        "abl_rank_drop1",
    ],
}


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:] if not p.startswith("--")]
    sparse = Bm25Encoder(get_settings())
    ablated = {p: build(p, sparse) for p in paths}
    if "--build-only" in sys.argv:
        return 0
    plain_load = loco.load

    def load(path: Path, sparse: Bm25Encoder) -> list[loco.Row]:
        rows = plain_load(path, sparse)
        lines = path.read_text(encoding="utf-8").splitlines()
        for row, line in zip(rows, lines, strict=True):
            if row.reached:
                ev = json.loads(line)["evidence"]
                own = ablated[path][ev["question"]]
                row.feats |= {k: SCALE * v for k, v in own.items()} | cohesion_features(ev, sparse)
        return rows

    loco.load = load
    keep = ["rarity+plain+sim+type", "static soft + bigrams", "soft sentence+quoted+top+top over pool"]
    loco.FEATURE_SETS = {k: loco.FEATURE_SETS[k] for k in keep} | ABL_SETS
    sys.argv = [sys.argv[0], *map(str, paths)]
    return loco.main()


if __name__ == "__main__":
    raise SystemExit(main())
