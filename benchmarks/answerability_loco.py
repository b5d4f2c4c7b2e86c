"""Leave-one-corpus-out evaluation of the answerability score, from the features benchmarks/answerability_features.py
recorded (no retrieval is run here).

For each dev corpus: fit the weights on the other corpora, pick the threshold on them (the highest keeping wrongly
abstained at most a target on each; targets are compared too), and report on every question of the corpus left out. Candidate feature sets
are compared this way; the one whose worst left-out corpus abstains most (wrongly abstained <= 0.05 on all) wins,
and is then fitted on all corpora: those are the WEIGHTS and the default threshold to ship. Also prints "before"
(the previous score, default 0.46, previous quoting order) and "off" for each corpus.

    PYTHONPATH=. python benchmarks/answerability_loco.py data/features/handbook.jsonl data/features/18f.jsonl ...
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_core.answerability import Evidence, features
from rag_core.settings import get_settings
from rag_core.sparse import Bm25Encoder

# Wrongly abstained allowed on each corpus the threshold is picked on (0.05 is the bar on the corpus left out).
TARGETS = (0.0, 0.01, 0.02, 0.03, 0.04)
LEGACY_WEIGHTS = {
    "bias": -3.693,
    "cov_quoted": 1.639,
    "cov_top": 2.148,
    "cov_blocks": 0.972,
    "missing_numbers": -0.249,
    "missing_names": -1.846,
    "relevance": 1.052,
}
LEGACY_MIN = 0.46
FEATURE_SETS: dict[str, list[str]] = {
    "coverage": ["cov_quoted", "cov_top", "cov_blocks", "missing_numbers", "missing_names", "relevance"],
    "coverage+sim": [
        "cov_quoted",
        "cov_top",
        "cov_blocks",
        "missing_numbers",
        "missing_names",
        "relevance",
        "sentence_sim",
    ],
    "all": [
        "cov_quoted",
        "cov_top",
        "cov_blocks",
        "sentence_sim",
        "type_missing",
        "missing_numbers",
        "missing_names",
        "relevance",
        "margin",
    ],
    "sim+type+cov": ["cov_quoted", "cov_blocks", "sentence_sim", "type_missing", "relevance"],
    "sim+type": ["sentence_sim", "type_missing", "cov_quoted", "relevance", "margin"],
}


@dataclass(slots=True)
class Row:
    answerable: bool
    gold: list[str]
    reached: bool  # the quoted-passage path was reached (the relevance threshold did not abstain)
    feats: dict[str, float]
    legacy: dict[str, float]
    first: str | None  # doc id cited first (best source first)
    first_old: str | None  # doc id cited first (previous quoting order)
    cited: list[str]


def load(path: Path, sparse: Bm25Encoder) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d: dict[str, Any] = json.loads(line)
        reached = not d["threshold_abstained"]
        rows.append(
            Row(
                answerable=d["answerable"],
                gold=d["gold"],
                reached=reached,
                feats=features(Evidence.from_json(d["evidence"]), sparse) if reached else {},
                legacy=d.get("legacy_features_old") or {},
                first=(d.get("cited") or [None])[0],
                first_old=(d.get("cited_old") or [None])[0],
                cited=d.get("cited") or [],
            )
        )
    return rows


def probs(rows: Sequence[Row], names: list[str], w: np.ndarray) -> np.ndarray:
    x = np.asarray([[r.feats.get(n, 0.0) for n in names] if r.reached else [0.0] * len(names) for r in rows])
    return np.where([r.reached for r in rows], 1 / (1 + np.exp(-(w[0] + x @ w[1:]))), -1.0)


def fit(
    rows: Sequence[Row], names: list[str], l2: float = 0.01, steps: int = 6000, lr: float = 0.5
) -> np.ndarray:
    """Logistic regression (answerable = 1) over the rows that reached the quoted-passage path."""
    used = [r for r in rows if r.reached]
    x = np.asarray([[r.feats[n] for n in names] for r in used])
    y = np.asarray([1.0 if r.answerable else 0.0 for r in used])
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        w -= lr * (xb.T @ (p - y) / len(y) + l2 * np.r_[0, w[1:]])
    return w


def figures(rows: Sequence[Row], p: np.ndarray, t: float, old_order: bool = False) -> dict[str, float]:
    abst = np.asarray([not r.reached for r in rows]) | ((p < t) & (p >= 0))
    ans = [i for i, r in enumerate(rows) if r.answerable]
    un = [i for i, r in enumerate(rows) if not r.answerable]
    first = [rows[i].first_old if old_order else rows[i].first for i in ans]
    return {
        "abstained_unanswerable": float(np.mean(abst[un])) if un else 0.0,
        "wrongly_abstained": float(np.mean(abst[ans])) if ans else 0.0,
        "gold_cited_first": float(
            np.mean([not abst[i] and f in rows[i].gold for i, f in zip(ans, first, strict=True)])
        ),
    }


def highest_safe(groups: Sequence[tuple[Sequence[Row], np.ndarray]], target: float) -> float:
    """The highest threshold keeping wrongly abstained <= target on every group."""
    grid = np.round(np.arange(0.0, 1.0, 0.005), 3)
    best = 0.0
    for t in grid:
        if all(figures(rows, p, t)["wrongly_abstained"] <= target for rows, p in groups):
            best = float(t)
    return best


def legacy_probs(rows: Sequence[Row]) -> np.ndarray:
    out = []
    for r in rows:
        if not r.reached:
            out.append(-1.0)
            continue
        z = LEGACY_WEIGHTS["bias"] + sum(LEGACY_WEIGHTS[k] * v for k, v in r.legacy.items())
        out.append(1 / (1 + np.exp(-z)))
    return np.asarray(out)


def fmt(f: dict[str, float]) -> str:
    return f"{f['abstained_unanswerable']:.3f} / {f['wrongly_abstained']:.3f} / {f['gold_cited_first']:.3f}"


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]]
    sparse = Bm25Encoder(get_settings())
    corpora = {p.stem: load(p, sparse) for p in paths}
    print(
        "figures: abstained on unanswerable / wrongly abstained / gold cited first; all questions of the corpus"
    )
    for name, rows in corpora.items():
        zero = np.zeros(len(rows))
        print(
            f"{name}: {sum(r.answerable for r in rows)} answerable, {sum(not r.answerable for r in rows)} unanswerable"
            f" | off, previous quoting: {fmt(figures(rows, zero, 0.0, old_order=True))}"
            f" | off, best source first: {fmt(figures(rows, zero, 0.0))}"
            f" | before (previous score {LEGACY_MIN}): {fmt(figures(rows, legacy_probs(rows), LEGACY_MIN, True))}"
        )
    best_set, best_target, best_worst = "", 0.0, -1.0
    for target in TARGETS:
        for set_name, names in FEATURE_SETS.items():
            worst, ok, cells = 1.0, True, []
            for left_out, rows in corpora.items():
                others = {k: v for k, v in corpora.items() if k != left_out}
                w = fit([r for rs in others.values() for r in rs], names)
                t = highest_safe([(rs, probs(rs, names, w)) for rs in others.values()], target)
                f = figures(rows, probs(rows, names, w), t)
                cells.append(f"{left_out} (t={t:.3f}) {fmt(f)}")
                ok = ok and f["wrongly_abstained"] <= 0.05
                worst = min(worst, f["abstained_unanswerable"])
            print(
                f"\n[{set_name}, target {target}] left out: "
                + " ; ".join(cells)
                + f"\n  worst abstained {worst:.3f}, all safe {ok}"
            )
            if ok and worst > best_worst:
                best_set, best_target, best_worst = set_name, target, worst
    if not best_set:
        print("\nno feature set keeps wrongly abstained <= 0.05 on every corpus left out")
        return 1
    names = FEATURE_SETS[best_set]
    everything = [r for rs in corpora.values() for r in rs]
    w = fit(everything, names)
    t = highest_safe([(rs, probs(rs, names, w)) for rs in corpora.values()], best_target)
    weights = {
        "bias": round(float(w[0]), 3),
        **{n: round(float(v), 3) for n, v in zip(names, w[1:], strict=True)},
    }
    print(f"\nchosen: {best_set}, target {best_target} (worst left-out abstained {best_worst:.3f})")
    print("WEIGHTS =", json.dumps(weights, indent=4))
    print(f"answerability_min = {t}")
    for name, rows in corpora.items():
        print(f"  {name} (in the fit): {fmt(figures(rows, probs(rows, names, w), t))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
