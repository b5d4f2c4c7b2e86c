"""`ragbot eval --qa FILE` (answer quality against the configured index) and `ragbot eval --from-feedback OUT`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag_core.answer_eval import format_scores, load_cases, run_cases, score
from rag_core.engine import Engine
from rag_core.errors import UserError
from rag_core.logs import setup_logging
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
    llm = f"LLM {settings.llm_model}" if engine.generator else "no LLM (quoted passages)"
    print(
        f"{len(cases)} questions from {args.qa}{f' (split {args.split})' if args.split else ''}; "
        f"reranker {engine.reranker.name}; {llm}; answerability_min {settings.answerability_min}",
        flush=True,
    )
    results = run_cases(
        engine.answer,
        cases,
        progress=lambda i: print(f"  {i}/{len(cases)}", flush=True) if i % 20 == 0 else None,
    )
    engine.close()
    print(format_scores(score(results), "Answer quality:"))
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
