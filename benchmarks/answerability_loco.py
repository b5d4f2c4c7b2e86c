"""Leave-one-corpus-out evaluation of the answerability score, from the features benchmarks/answerability_features.py
recorded (no retrieval is run here).

For each dev corpus: fit the weights on the other corpora, pick the threshold on them (the highest keeping wrongly
abstained at most a target on each; targets are compared too), and report on every question of the corpus left out. Candidate feature sets
are compared this way; the one whose worst left-out corpus abstains most (wrongly abstained <= 0.05 on all) wins,
and is then fitted on all corpora: those are the WEIGHTS and the default threshold to ship; likewise the best set
that needs no forward pass per answer (CHEAP_WEIGHTS: words' own vectors, FEATURES.static.pkl of
benchmarks/answerability_static.py). Each set's row also shows the best any threshold could do on the corpus left
out (its separating power, whatever the transfer). Also prints "before" (the previous score, default 0.46,
previous quoting order) and "off" for each corpus.

    PYTHONPATH=. python benchmarks/answerability_loco.py data/features/handbook.jsonl data/features/18f.jsonl ...
"""

from __future__ import annotations

import json
import pickle
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
TARGETS = (0.0, 0.02, 0.04)
# The threshold picked on the fitted corpora is multiplied by this before use: a margin for corpora never seen.
SHRINKS = (1.0, 0.9, 0.8, 0.7, 0.6)
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
# The score shipped before soft term matching (lexical coverage, sentence similarity, answer type, names,
# relevance), its default threshold and the set/target/shrink that chose it.
PREVIOUS_WEIGHTS = {
    "bias": -3.39,
    "cov_quoted": 1.152,
    "raw_quoted": 1.089,
    "raw_blocks": 0.797,
    "sentence_sim": 1.794,
    "type_missing": -0.473,
    "missing_names": -1.023,
    "relevance": 1.097,
}
PREVIOUS_MIN = 0.17
PREVIOUS_CHOICE = ("rarity+plain+sim+type", 0.02, 1.0)
FEATURE_SETS: dict[str, list[str]] = {
    "rarity coverage": [
        "cov_quoted",
        "cov_top",
        "cov_blocks",
        "missing_numbers",
        "missing_names",
        "relevance",
    ],
    "plain coverage": ["raw_quoted", "raw_blocks", "missing_numbers", "missing_names", "relevance"],
    "plain coverage+sim+type": [
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_numbers",
        "missing_names",
        "relevance",
    ],
    "rarity coverage+sim": [
        "cov_quoted",
        "cov_blocks",
        "sentence_sim",
        "missing_numbers",
        "missing_names",
        "relevance",
    ],
    "rarity+plain+sim+type": [
        "cov_quoted",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "all": [
        "cov_quoted",
        "cov_top",
        "cov_blocks",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_numbers",
        "missing_names",
        "relevance",
        "margin",
    ],
    "rarity+plain+sim+type, no relevance": [
        "cov_quoted",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_names",
    ],
    "rarity+plain+sim+type+top": [
        "cov_quoted",
        "cov_top",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "sim+type+relevance": ["sentence_sim", "type_missing", "missing_names", "relevance", "margin"],
    # Soft term matching with the embedding model's token vectors (rag_core/soft_match.py; needs the
    # FEATURES.words.pkl benchmarks/answerability_soft.py writes).
    "shipped before + soft top": [
        "cov_quoted",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
        "soft_top",
        "soft_min_top",
    ],
    "shipped before + scale-free lexical": [
        "cov_quoted",
        "raw_quoted",
        "raw_blocks",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
        "top_over_pool",
        "unseen",
        "rare_missing_blocks",
        "rare_missing_quoted",
        "rel_z",
    ],
    "soft quoted": [
        "soft_quoted",
        "soft_min_quoted",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "soft sentence+quoted": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "soft quoted+top": [
        "soft_quoted",
        "soft_min_quoted",
        "soft_top",
        "soft_min_top",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "soft sentence+quoted+top": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "soft_top",
        "soft_min_top",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "soft sentence+quoted+top+top over pool": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "soft_top",
        "soft_min_top",
        "top_over_pool",
        "sentence_sim",
        "type_missing",
        "missing_names",
        "relevance",
    ],
}
_CHEAP = ["top_over_pool", "type_missing", "missing_names", "relevance"]
_SW = ["sw_sent", "sw_min_sent", "sw_quoted", "sw_min_quoted", "sw_top", "sw_min_top"]
_WINDOW = ["sw_window", "sw_min_window", "sw_window_top", "sw_min_window_top"]
# Soft term matching with each word's own vector (no contextual pass per answer; FEATURES.static.pkl).
FEATURE_SETS |= {
    "static soft": _SW + _CHEAP,
    "static soft + sim": _SW + _CHEAP + ["sentence_sim"],
    "static soft + windows": _SW + _WINDOW + _CHEAP,
    "static soft + windows + sim": _SW + _WINDOW + _CHEAP + ["sentence_sim"],
    "static soft + bigrams": _SW + ["bigram_quoted", "bigram_top"] + _CHEAP,
    "static soft + windows + bigrams": _SW + _WINDOW + ["bigram_quoted", "bigram_top"] + _CHEAP,
    "static windows only": _WINDOW + _CHEAP,
    "static soft + windows + margin": _SW + _WINDOW + _CHEAP + ["margin", "rel_z"],
    "ctx short + static top": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "sentence_sim",
        "sw_top",
        "sw_min_top",
        "top_over_pool",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "ctx short + static top + windows": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "sentence_sim",
        "sw_top",
        "sw_min_top",
        "sw_window",
        "sw_min_window",
        "top_over_pool",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "ctx short + static top + bigrams": [
        "soft_sent",
        "soft_min_sent",
        "soft_quoted",
        "soft_min_quoted",
        "sentence_sim",
        "sw_top",
        "sw_min_top",
        "bigram_quoted",
        "bigram_top",
        "top_over_pool",
        "type_missing",
        "missing_names",
        "relevance",
    ],
    "contextual shipped + bigrams": FEATURE_SETS["soft sentence+quoted+top+top over pool"]
    + ["bigram_quoted", "bigram_top"],
    "contextual shipped + windows": FEATURE_SETS["soft sentence+quoted+top+top over pool"] + _WINDOW,
    "contextual shipped + static soft": FEATURE_SETS["soft sentence+quoted+top+top over pool"] + _SW,
    # how far the top source's relevance stands above the other kept sources' (issue 20, fourth session)
    "contextual shipped + top over rest + spread": FEATURE_SETS["soft sentence+quoted+top+top over pool"]
    + ["top_over_rest", "relevance_spread"],
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
    split: str | None = None


def load(path: Path, sparse: Bm25Encoder) -> list[Row]:
    rows = []
    # token vectors of the question, quoted sentences and top sources (benchmarks/answerability_soft.py), if made
    pickled = path.with_suffix(".words.pkl")
    if not pickled.exists():
        raise SystemExit(f"no {pickled}: run benchmarks/answerability_soft.py {path} first")
    words = pickle.loads(pickled.read_bytes())
    # each word's own vector (benchmarks/answerability_static.py), if made: the cheap soft match
    static_file = path.with_suffix(".static.pkl")
    static = pickle.loads(static_file.read_bytes()) if static_file.exists() else {}
    for line in path.read_text(encoding="utf-8").splitlines():
        d: dict[str, Any] = json.loads(line)
        reached = not d["threshold_abstained"]
        evidence = Evidence.from_json(d["evidence"]) if reached else None
        if evidence is not None:
            evidence.words = words.get(evidence.question)
            evidence.static = static.get(evidence.question)
        rows.append(
            Row(
                answerable=d["answerable"],
                gold=d["gold"],
                reached=reached,
                feats=features(evidence, sparse) if evidence is not None else {},
                legacy=d.get("legacy_features_old") or {},
                first=(d.get("cited") or [None])[0],
                first_old=(d.get("cited_old") or [None])[0],
                cited=d.get("cited") or [],
                split=d.get("split"),
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
    paths = [Path(p) for p in sys.argv[1:] if not p.startswith("--")]
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
    results: dict[tuple[str, float, float], dict[str, tuple[float, dict[str, float]]]] = {}
    fitted: dict[tuple[str, str], np.ndarray] = {}
    for target, shrink in [(t, k) for t in TARGETS for k in SHRINKS]:
        for set_name, names in FEATURE_SETS.items():
            cells = {}
            for left_out, rows in corpora.items():
                others = {k: v for k, v in corpora.items() if k != left_out}
                if (set_name, left_out) not in fitted:  # the fit does not depend on the target or the shrink
                    fitted[(set_name, left_out)] = fit([r for rs in others.values() for r in rs], names)
                w = fitted[(set_name, left_out)]
                t = shrink * highest_safe([(rs, probs(rs, names, w)) for rs in others.values()], target)
                cells[left_out] = (t, figures(rows, probs(rows, names, w), t))
            results[(set_name, target, shrink)] = cells
            worst = min(f["abstained_unanswerable"] for _, f in cells.values())
            print(
                f"\n[{set_name}, target {target}, shrink {shrink}] left out: "
                + " ; ".join(f"{k} (t={t:.3f}) {fmt(f)}" for k, (t, f) in cells.items())
                + f"\n  worst abstained {worst:.3f}, all safe {_safe(cells)}"
            )

    # Safe on every corpus left out first, then the most abstentions on the worst corpus; if none is safe, the
    # fewest wrong abstentions on the worst corpus.
    def rank(key: tuple[str, float, float]) -> tuple[bool, float, float, int]:
        cells = results[key]
        wrong = max(f["wrongly_abstained"] for _, f in cells.values())
        size = -len(FEATURE_SETS[key[0]])  # last tie-break: the fewest features
        if _safe(cells):  # ties: the fewest wrong abstentions on the worst corpus
            return (True, min(f["abstained_unanswerable"] for _, f in cells.values()), -wrong, size)
        return (False, -wrong, 0.0, size)

    # Each feature set at its best target and shrink (same rule): the table of docs/answers.md.
    print(
        "\n| feature set | target, shrink | "
        + " | ".join(f"{k} left out" for k in corpora)
        + " | best threshold on the corpus left out |"
    )
    print("|---|---|" + "---|" * (len(corpora) + 1))
    for set_name in FEATURE_SETS:
        key = max((k for k in results if k[0] == set_name), key=rank)
        safe = "" if _safe(results[key]) else " (not safe)"
        # the best any threshold could do on the corpus left out (weights that never saw it, threshold fitted on it):
        # what separating power the features have there, whatever the transfer of the threshold
        best = []
        for left_out, rows in corpora.items():
            p = probs(rows, FEATURE_SETS[set_name], fitted[(set_name, left_out)])
            own = highest_safe([(rows, p)], 0.05)
            best.append(figures(rows, p, own)["abstained_unanswerable"])
        print(
            f"| {set_name}{safe} | {key[1]}, {key[2]} | "
            + " | ".join(fmt(f) for _, f in results[key].values())
            + " | "
            + " / ".join(f"{b:.2f}" for b in best)
            + " |"
        )

    best_set, best_target, best_shrink = max(results, key=rank)
    cells = results[(best_set, best_target, best_shrink)]
    names = FEATURE_SETS[best_set]
    everything = [r for rs in corpora.values() for r in rs]
    w = fit(everything, names)
    t = round(
        best_shrink * highest_safe([(rs, probs(rs, names, w)) for rs in corpora.values()], best_target), 3
    )
    weights = {
        "bias": round(float(w[0]), 3),
        **{n: round(float(v), 3) for n, v in zip(names, w[1:], strict=True)},
    }
    print(
        f"\nchosen: {best_set}, target {best_target}, shrink {best_shrink}; safe on every corpus left out: {_safe(cells)}"
    )
    print("WEIGHTS =", json.dumps(weights, indent=4))
    print(f"answerability_min = {t}")
    # The cheap check: no contextual token pass and no sentence embedding per answer (words' own vectors only).
    cheap_key = max((k for k in results if _cheap(FEATURE_SETS[k[0]])), key=rank)
    cheap_names = FEATURE_SETS[cheap_key[0]]
    cheap_w = fit(everything, cheap_names)
    cheap_t = round(
        cheap_key[2]
        * highest_safe([(rs, probs(rs, cheap_names, cheap_w)) for rs in corpora.values()], cheap_key[1]),
        3,
    )
    print(f"\ncheap check chosen: {cheap_key[0]}, target {cheap_key[1]}, shrink {cheap_key[2]}")
    print(
        "CHEAP_WEIGHTS =",
        json.dumps(
            {
                "bias": round(float(cheap_w[0]), 3),
                **{n: round(float(v), 3) for n, v in zip(cheap_names, cheap_w[1:], strict=True)},
            },
            indent=4,
        ),
    )
    print(f"cheap answerability_min = {cheap_t}")
    print(
        "\n| corpus (left out) | setting | abstained on unanswerable | wrongly abstained | gold cited first |"
    )
    print("|---|---|---|---|---|")
    for name, rows in corpora.items():
        zero = np.zeros(len(rows))
        lines = [
            ("off, previous quoting", figures(rows, zero, 0.0, old_order=True)),
            (f"handbook-only score, {LEGACY_MIN}", figures(rows, legacy_probs(rows), LEGACY_MIN, True)),
            ("off, best source first", figures(rows, zero, 0.0)),
            (
                f"before: previous score, left out of the fit (t={results[PREVIOUS_CHOICE][name][0]:.3f})",
                results[PREVIOUS_CHOICE][name][1],
            ),
            (
                f"before: previous shipped weights and default {PREVIOUS_MIN}",
                figures(
                    rows, probs(rows, list(PREVIOUS_WEIGHTS)[1:], _vector(PREVIOUS_WEIGHTS)), PREVIOUS_MIN
                ),
            ),
            (f"after, left out of the fit (t={cells[name][0]:.3f})", cells[name][1]),
            (f"after, shipped weights and default {t}", figures(rows, probs(rows, names, w), t)),
            (
                f"cheap check, left out of the fit (t={results[cheap_key][name][0]:.3f})",
                results[cheap_key][name][1],
            ),
            (
                f"cheap check, weights fitted on all and default {cheap_t}",
                figures(rows, probs(rows, cheap_names, cheap_w), cheap_t),
            ),
        ]
        # What `ragbot calibrate` gives a team: weights that never saw the corpus, threshold fitted on its tune half
        # (wrongly abstained <= 0.05), figures on its report half.
        w_out = fitted[(best_set, name)]
        tune = [r for r in rows if r.split == "tune"]
        report = [r for r in rows if r.split == "report"]
        if tune and report:
            t_own = highest_safe([(tune, probs(tune, names, w_out))], 0.05)
            lines.append(
                (
                    f"calibrated on its tune half (t={t_own:.3f}), report half",
                    figures(report, probs(report, names, w_out), t_own),
                )
            )
        n = f"{name} ({sum(r.answerable for r in rows)}+{sum(not r.answerable for r in rows)})"
        for label, f in lines:
            print(
                f"| {n} | {label} | {f['abstained_unanswerable']:.3f} | {f['wrongly_abstained']:.3f} "
                f"| {f['gold_cited_first']:.3f} |"
            )
    return 0


def _vector(weights: dict[str, float]) -> np.ndarray:
    return np.asarray(list(weights.values()))  # bias first, then the features in order


def _cheap(names: Sequence[str]) -> bool:
    """A feature set that needs no forward pass per answer beyond words never seen before."""
    return not any(n.startswith("soft_") or n == "sentence_sim" for n in names)


def _safe(cells: dict[str, tuple[float, dict[str, float]]]) -> bool:
    return all(f["wrongly_abstained"] <= 0.05 for _, f in cells.values())


if __name__ == "__main__":
    raise SystemExit(main())
