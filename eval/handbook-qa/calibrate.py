"""Fits the answerability score (rag_core/answerability.py) on the TUNE split of dev.jsonl, never the report split.

Asks the configured index (no LLM) every tune question, records the features of each quoted-passage answer, fits
a logistic regression (answerable = 1) and picks the threshold that maximises abstentions on unanswerable minus
wrong abstentions on answerable questions. Prints WEIGHTS and the threshold to paste into answerability.py and
settings.answerability_min. With --report, it then prints the `ragbot eval --qa` figures on the REPORT split with
the answerability check off and with the fitted one (one model load instead of three on a busy machine).

    source env.sh; PYTHONPATH=. python eval/handbook-qa/calibrate.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import rag_core.answerability as answerability_module  # noqa: E402
import rag_core.engine as engine_module  # noqa: E402
from rag_core.answer_eval import format_scores, load_cases, run_cases, score  # noqa: E402
from rag_core.answerability import features  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.kv import MemoryKV  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402
from rag_core.types import Answer  # noqa: E402

recorded: list[dict[str, float]] = []


def recording_answerability(*args: Any) -> float:
    recorded.append(features(*args))
    return 1.0  # never abstain here: we want every answer's features


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 20000, lr: float = 0.5) -> np.ndarray:
    """Logistic regression by gradient descent; returns [bias, w...]."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) / len(y) + l2 * np.r_[0, w[1:]]
        w -= lr * grad
    return w


def main() -> int:
    settings = get_settings().model_copy(update={"redis_url": None, "answerability_min": 1e-9})
    cases = load_cases(HERE / "dev.jsonl", "tune")
    engine = Engine.from_settings(settings)
    if engine.generator is not None:
        raise SystemExit("calibrate without an LLM: unset RAG_OPENAI_BASE_URL / RAG_OPENAI_API_KEY")
    engine_module.answerability = recording_answerability  # type: ignore[assignment]
    rows: list[tuple[dict[str, float] | None, bool]] = []
    for case in cases:
        before = len(recorded)
        answer = engine.answer(case.question)
        rows.append(
            (recorded[-1] if len(recorded) > before and not answer.abstained else None, case.answerable)
        )
    names = list(next(f for f, _ in rows if f is not None))
    scored = [(f, y) for f, y in rows if f is not None]
    x = np.asarray([[f[n] for n in names] for f, _ in scored])
    y = np.asarray([1.0 if a else 0.0 for _, a in scored])
    w = fit(x, y)
    probs = 1 / (1 + np.exp(-(w[0] + x @ w[1:])))
    n_ans = sum(1 for _, a in rows if a)
    n_un = len(rows) - n_ans
    base_abst_ans = sum(1 for f, a in rows if f is None and a)
    base_abst_un = sum(1 for f, a in rows if f is None and not a)
    best = (-1.0, 0.0)
    for t in np.unique(np.round(probs, 3)):
        abst = probs < t
        good = (base_abst_un + sum(abst & (y == 0))) / n_un
        bad = (base_abst_ans + sum(abst & (y == 1))) / n_ans
        if good - bad > best[0]:
            best = (good - bad, float(t))
    weights = {
        "bias": round(float(w[0]), 3),
        **{n: round(float(v), 3) for n, v in zip(names, w[1:], strict=True)},
    }
    print(f"tune split: {len(rows)} questions, {len(scored)} reached the quoted-passage path")
    print("WEIGHTS =", json.dumps(weights, indent=4))
    print(
        f"answerability_min = {best[1]}  (tune: abstained-on-unanswerable minus wrongly-abstained = {best[0]:.3f})"
    )
    if "--report" in sys.argv:
        engine_module.answerability = answerability_module.answerability  # type: ignore[assignment]
        answerability_module.WEIGHTS.update(weights)
        report = load_cases(HERE / "dev.jsonl", "report")
        for label, threshold in (("before (answerability off)", 0.0), ("after (answerability on)", best[1])):
            engine.cache.kv = MemoryKV()  # a fresh in-process cache per arm

            def ask(question: str, t: float = threshold) -> Answer:
                return engine.answer(question, overrides={"answerability_min": t})

            print(f"\n{len(report)} questions, split report, answerability_min {threshold}")
            print(format_scores(score(run_cases(ask, report)), f"Answer quality, {label}:"))
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
