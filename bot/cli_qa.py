"""`ragbot eval --qa FILE` (answer quality against the configured index), `ragbot eval --from-feedback OUT` and
`ragbot calibrate --qa FILE` (the answerability threshold for a team's own questions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag_core.answer_eval import QACase, QAResult, format_scores, load_cases, run_cases, score
from rag_core.calibration import ENV_NAME, Point, choose, curve, format_curve, write_env
from rag_core.engine import Engine
from rag_core.errors import UserError
from rag_core.logs import setup_logging
from rag_core.permissions import Audience
from rag_core.settings import get_settings


def qa_command(args: argparse.Namespace) -> int:
    base = get_settings()
    setup_logging(base)
    cases = load_cases(Path(args.qa), args.split, args.limit)
    # In-process cache only: a shared Redis would answer repeated runs from the cache and hide the latency.
    settings = base.model_copy(update={"redis_url": None})
    engine = Engine.from_settings(settings)
    if engine.index_version == 0:
        raise UserError("the index is empty: run `ragbot sync` first; --qa asks the configured index")
    engine.score_answerability = True  # for the trade-off curve, also when the check is off
    llm = f"LLM {settings.llm_model}" if engine.generator else "no LLM (quoted passages)"
    print(
        f"{len(cases)} questions from {args.qa}{f' (split {args.split})' if args.split else ''}; "
        f"reranker {engine.reranker.name}; {llm}; answerability_min {settings.answerability_min}",
        flush=True,
    )
    results = _answer_all(engine, cases)
    print(format_scores(score(results), "Answer quality:"))
    if any(r.answer.answerability is not None for r in results):
        points = curve(results)
        print("Answerability trade-off (quoted-passage answers; `ragbot calibrate --qa FILE` picks one):")
        print(format_curve(points, {_nearest(points, settings.answerability_min): "<- current"}))
    return 0


def _nearest(points: list[Point], value: float) -> float:
    return min(points, key=lambda p: abs(p.threshold - value)).threshold


def calibrate_command(args: argparse.Namespace) -> int:
    """Asks the team's questions without an LLM, prints the trade-off curve and writes the highest threshold
    whose wrongly-abstained share stays within --max-wrong into the env file."""
    base = get_settings()
    setup_logging(base)
    cases = load_cases(Path(args.qa), args.split, args.limit)
    answerable = sum(c.answerable for c in cases)
    if not answerable:
        raise UserError(f"{args.qa} has no answerable questions: calibrating needs some (👍 answers work)")
    # The check scores quoted-passage answers, so calibrate on those: no LLM, no shared cache, check off.
    settings = base.model_copy(
        update={"redis_url": None, "openai_base_url": None, "openai_api_key": None, "answerability_min": 0.0}
    )
    engine = Engine.from_settings(settings)
    if engine.index_version == 0:
        raise UserError("the index is empty: run `ragbot sync` first; calibrate asks the configured index")
    engine.score_answerability = True
    print(
        f"{len(cases)} questions from {args.qa} ({answerable} answerable); no LLM (quoted passages)",
        flush=True,
    )
    results = _answer_all(engine, cases)
    points = curve(results)
    chosen = choose(points, args.max_wrong)
    print(format_curve(points, {chosen.threshold: "<- chosen"}))
    if answerable < 20:
        print(
            f"only {answerable} answerable questions: each one moves wrongly abstained by {1 / answerable:.3f}"
        )
    print(
        f"highest threshold with wrongly abstained <= {args.max_wrong}: {chosen.threshold:g}"
        + (
            f" (abstains on {chosen.abstained_unanswerable:.3f} of unanswerable)"
            if chosen.abstained_unanswerable is not None
            else ""
        )
    )
    if args.print_only:
        print(f"{ENV_NAME}={chosen.threshold:g}")
        return 0
    env_file = Path(args.env_file)
    line = write_env(env_file, chosen.threshold)
    print(f"wrote {line} to {env_file} (read at start; an exported {ENV_NAME} takes precedence)")
    return 0


def from_feedback_command(args: argparse.Namespace) -> int:
    from rag_core.feedback.qa_export import export_cases
    from rag_core.feedback.store import FeedbackStore

    settings = get_settings()
    setup_logging(settings)
    out = Path(args.from_feedback)
    with FeedbackStore.from_settings(settings) as store:
        written, reviews = export_cases(store, out, args.days)
    print(f"wrote {written} cases from 👍 answers of the last {args.days} days to {out}")
    if reviews:
        print(f"{len(reviews)} 👎 answers to review (not written):")
        for review in reviews:
            print(
                json.dumps(
                    {"answer_id": review.answer_id, "question": review.question, "cited": review.cited}
                )
            )
    return 0


def _answer_all(engine: Engine, cases: list[QACase]) -> list[QAResult]:
    """Every case answered as the terminal answers (the operator: every document), with progress; then closes."""
    try:
        return run_cases(
            lambda question: engine.answer(question, audience=Audience.operator()),
            cases,
            progress=lambda i: print(f"  {i}/{len(cases)}", flush=True) if i % 20 == 0 else None,
        )
    finally:
        engine.close()
