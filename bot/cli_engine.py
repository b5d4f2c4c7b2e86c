"""Terminal commands that talk to the engine: ask, sources, eval and the demo."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot import local
from rag_core.errors import UserError
from rag_core.logs import setup_logging
from rag_core.permissions import Audience
from rag_core.settings import Settings, get_settings
from rag_core.types import Answer, Citation

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.evaluation import BeirData

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _settings() -> Settings:
    settings = get_settings()
    setup_logging(settings)
    return settings


def _check_sources(settings: Settings, names: list[str] | None) -> list[str] | None:
    if not names:
        return None
    known = {s.name for s in settings.sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(
            f"unknown source {', '.join(map(repr, unknown))}; configured sources: {', '.join(sorted(known)) or 'none'}"
        )
    return names


def print_citations(citations: list[Citation], out=sys.stdout) -> None:  # noqa: ANN001
    for c in citations:
        path = " > ".join(h for h in c.heading_path if h != c.title)
        where = f" — {path}" if path else ""
        print(f"  [{c.n}] {c.title}{where}\n      {c.url}  (score {c.score:.3f})", file=out)


def print_answer(answer: Answer, streamed: bool, out=sys.stdout) -> None:  # noqa: ANN001
    if not streamed:
        print(answer.text, file=out)
    print(file=out)
    if answer.citations:
        print("Closest sources:" if answer.abstained else "Sources:", file=out)
        print_citations(answer.citations, out)
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.timings_ms.items())
    extra = " (cache hit)" if answer.cache_hit else ""
    print(f"\nTimings: {timings}{extra}", file=out)
    if answer.tokens_in or answer.cost_usd:
        print(
            f"Tokens: {answer.tokens_in} in, {answer.tokens_out} out; est. cost ${answer.cost_usd:.5f}",
            file=out,
        )


def _ask(engine: Engine, question: str, sources: list[str] | None) -> Answer:
    # the terminal is the operator, who can read the index's files anyway: it sees every document
    answer = engine.answer(
        question, allowed_sources=sources, on_token=_on_token, audience=Audience.operator()
    )
    print()
    print_answer(answer, streamed=True)
    return answer


def _on_token(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def ask_command(args: argparse.Namespace) -> int:
    settings = _settings()
    if not args.question.strip():
        raise UserError('the question is empty: ask something, e.g. ragbot ask "How do I reset my VPN?"')
    sources = _check_sources(settings, args.sources)
    if (port := local.holder_port(settings)) is not None:  # the bot holds the index: it answers for us
        answer = local.ask(port, args.question, sources, _on_token, local.run_token(settings))
        print()
        print_answer(answer, streamed=True)
        return 0
    from rag_core.engine import Engine

    engine = Engine.from_settings(settings)
    if engine.index_version == 0:
        raise UserError(
            "the index is empty: run `ragbot sync` first (or `ragbot demo` for the sample knowledge base)"
        )
    _ask(engine, args.question, sources)
    return 0


def sources_command(args: argparse.Namespace) -> int:
    settings = _settings()
    sources = _check_sources(settings, args.sources)
    if (port := local.holder_port(settings)) is not None:
        citations = local.sources(port, args.question, sources, local.run_token(settings))
    else:
        from rag_core.engine import Engine

        citations = Engine.from_settings(settings).sources(
            args.question, allowed_sources=sources, audience=Audience.operator()
        )
    if not citations:
        print("No sources found.")
    print_citations(citations)
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from rag_core.evaluation import beir_settings, evaluate, format_results, index_corpus, load_beir

    base = _settings()
    folder = Path(args.beir)
    split = args.split or "test"
    data = load_beir(folder, split)
    settings = beir_settings(base, folder)
    if getattr(args, "corpus_sample", 0):
        data = sample_corpus(data, args.limit, args.corpus_sample)
        settings = settings.model_copy(
            update={
                "data_dir": settings.data_dir.with_name(
                    f"{settings.data_dir.name}-sample{args.corpus_sample}"
                )
            }
        )
    if getattr(args, "backend", None):
        settings = settings.model_copy(
            update={
                "embedding_backend": args.backend,
                "data_dir": settings.data_dir.with_name(f"{settings.data_dir.name}-{args.backend}"),
            }
        )

    from rag_core.engine import Engine

    engine = Engine.from_settings(settings)
    print(
        f"embedding backend: {engine.embedder.backend_name}; reranker: {engine.reranker.name}; corpus {len(data.corpus)} docs; {len(data.queries)} queries",
        flush=True,
    )
    start = time.perf_counter()
    index_corpus(engine, data, progress=lambda i: print(f"  indexed {i}/{len(data.corpus)}", flush=True))
    print(f"index ready in {time.perf_counter() - start:.0f} s", flush=True)
    results = evaluate(engine, data, limit=args.limit)
    print(format_results(results, min(len(data.queries), args.limit or len(data.queries)), split))
    return 0


def sample_corpus(data: BeirData, limit: int, others: int) -> BeirData:
    """The first `limit` queries (all when 0), their judged documents, and the first `others` other documents."""
    from rag_core.evaluation import BeirData

    queries = dict(list(data.queries.items())[: limit or None])
    judged = {d for q in queries for d in data.qrels.get(q, {})}
    keep = judged | set([d for d in data.corpus if d not in judged][:others])
    corpus = {d: text for d, text in data.corpus.items() if d in keep}
    return BeirData(corpus, queries, {q: data.qrels[q] for q in queries})


DEMO_QUESTIONS_FILE = SAMPLES / "README.md"


def demo_questions() -> list[str]:
    """The numbered, quoted questions under "Demo questions" in samples/README.md."""
    text = DEMO_QUESTIONS_FILE.read_text(encoding="utf-8").split("## Demo questions", 1)[-1]
    questions = re.findall(r'^\d+\.\s+"([^"]+)"', text, flags=re.MULTILINE)
    if not questions:
        raise UserError(f"no demo questions in {DEMO_QUESTIONS_FILE}")
    return questions


def demo_command(args: argparse.Namespace) -> int:
    """Index the bundled samples into data/demo and answer the sample questions."""
    from connectors import sample_sources
    from connectors.sync import run_sync

    base = get_settings()
    settings = base.model_copy(
        update={
            "data_dir": base.data_dir / "demo",
            "sources": sample_sources(SAMPLES),
            "log_json": False,
            "log_level": "WARNING",
        }
    )
    setup_logging(settings)
    print("Loading models and the embedded index...", flush=True)
    from rag_core.engine import Engine

    engine = Engine.from_settings(settings)
    print(
        f"Reranker: {engine.reranker.name}. LLM: {settings.llm_model if engine.generator else 'none (extractive)'}"
    )
    for report in run_sync(settings, engine.index_writer()):
        print(
            f"Synced {report.source}: {report.added} added, {report.updated} updated, {report.deleted} deleted, "
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped ({report.duration_s:.1f} s)"
        )
    for question in demo_questions():
        print(f"\n=== {question}\n")
        _ask(engine, question, None)
    engine.close()
    return 0
