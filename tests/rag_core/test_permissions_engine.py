"""A restricted document reaches only the audiences its access names, through every engine path (real model, real
qdrant-edge store): rank, sources, extractive and LLM answers, multi-query, the answer cache; and 200 generated
questions about a restricted page leak nothing of it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.engine import Engine
from rag_core.generation import LLMGenerator
from rag_core.kv import MemoryKV
from rag_core.permissions import Access, Audience
from rag_core.store import open_store
from rag_core.types import Answer, Document
from tests.conftest import make_settings, small_documents

CEO = "user:ceo@acme.test"
LEGAL = "group:legal"
ACQUISITION = Document(
    id="acquisition",
    source="eng-wiki",
    title="Project Nightingale",
    url="https://wiki.example.com/nightingale",
    text=(
        "# Project Nightingale\n"
        "The acquisition codename is Nightingale. We are buying Robotica GmbH, a warehouse robotics startup in "
        "Leipzig, for 40 million euros. The deal closes on March 14 after the antitrust review. "
        "Only the board and the legal team know the purchase price.\n\n"
        "# Data room\n"
        "The data room is hosted by Datasite; its password rotates every Monday. Robotica's founders, Jana Vogel "
        "and Piet Osterhaus, stay on for two years with retention bonuses of 2 million euros each. "
        "Layoffs of 30 Robotica engineers are planned for the second quarter."
    ),
    access=Access.only({CEO, LEGAL}),
)
SALARIES = Document(
    id="salaries",
    source="people-drive",
    title="Salary bands 2027",
    url="https://drive.example.com/salaries",
    text="# Salary bands\nStaff engineers earn between 180k and 220k dollars; principal engineers up to 260k.",
    access=Access.only({"group:hr"}),
)
BOARD = Document(  # restricted to nobody (e.g. disjoint ancestor restrictions): the operator alone reads it
    id="board",
    source="eng-wiki",
    title="Board minutes",
    url="https://wiki.example.com/board",
    text="# Board minutes\nThe board approved Project Quetzal, the spin-off of the hardware division, in October.",
    access=Access.only(set()),
)
RESTRICTED = {ACQUISITION.id, SALARIES.id, BOARD.id}
# Words only the restricted documents hold: none may appear in what an outsider is shown.
MARKERS = (
    "nightingale",
    "robotica",
    "40 million",
    "datasite",
    "vogel",
    "osterhaus",
    "retention",
    "180k",
    "layoffs",
)
OUTSIDERS = [Audience.public(), Audience.of(["user:eve@acme.test", "group:eng"]), None]


def build(small_engine, data_dir: Path, **overrides) -> Engine:
    settings = make_settings(data_dir, **overrides)
    engine = Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
        generator=LLMGenerator(settings) if settings.llm_configured else None,
    )
    with engine.index_writer().begin() as tx:
        for doc in [*small_documents(), ACQUISITION, SALARIES, BOARD]:
            tx.upsert(doc, "v1")
    return engine


@pytest.fixture(scope="module")
def engine(small_engine, tmp_path_factory) -> Iterator[Engine]:
    built = build(small_engine, tmp_path_factory.mktemp("permissions-engine"))
    yield built
    built.close()


def shown(answer: Answer) -> str:
    """Everything an asker sees of an answer: its text and each citation's title, URL and snippet."""
    parts = [answer.text] + [f"{c.title} {c.url} {c.snippet} {c.doc_id}" for c in answer.citations]
    return " ".join(parts).lower()


def leaks(text: str) -> list[str]:
    return [m for m in (*MARKERS, *RESTRICTED, ACQUISITION.url, SALARIES.url) if m in text.lower()]


@pytest.mark.parametrize("audience", OUTSIDERS, ids=["public", "non-member", "none"])
def test_outsiders_never_get_a_restricted_document(engine: Engine, audience: Audience | None) -> None:
    question = "What is the acquisition codename and who are Robotica's founders?"
    ranked = engine.rank(question, limit=50, audience=audience)
    assert ranked and not {c.chunk.doc_id for c in ranked} & RESTRICTED
    sources = engine.sources(question, k=10, audience=audience)
    assert not {c.doc_id for c in sources} & RESTRICTED
    answer = engine.answer(question, audience=audience)
    assert leaks(shown(answer)) == []
    board = engine.sources("What did the board approve about Project Quetzal?", k=10, audience=audience)
    assert "board" not in {c.doc_id for c in board}


def test_a_document_restricted_to_nobody_is_read_by_the_operator_only(engine: Engine) -> None:
    question = "What did the board approve about Project Quetzal?"
    for audience in [*OUTSIDERS, Audience.of([CEO, LEGAL, "group:hr"])]:
        assert "board" not in {c.doc_id for c in engine.sources(question, k=10, audience=audience)}
    assert engine.sources(question, audience=Audience.operator())[0].doc_id == "board"


@pytest.mark.parametrize(
    "audience",
    [Audience.of([CEO]), Audience.of([LEGAL, "group:eng"]), Audience.operator()],
    ids=["named-user", "named-group", "operator"],
)
def test_the_named_principals_and_the_operator_see_it(engine: Engine, audience: Audience) -> None:
    question = "What is the acquisition codename?"
    answer = engine.answer(question, audience=audience)
    assert answer.citations[0].doc_id == "acquisition"
    assert "Nightingale" in answer.text
    assert answer.citations[0].readers == [LEGAL, CEO]
    assert engine.sources(question, audience=audience)[0].doc_id == "acquisition"
    salaries = engine.sources("How much do staff engineers earn?", k=10, audience=audience)
    assert ("salaries" in {c.doc_id for c in salaries}) == audience.everything  # hr's page: the operator only


def test_answers_for_different_audiences_never_share_a_cache_entry(small_engine, tmp_path: Path) -> None:
    engine = build(small_engine, tmp_path)
    question = "Who are Robotica's founders?"
    first = engine.answer(question, audience=Audience.operator())
    assert "Vogel" in first.text and not first.cache_hit
    assert engine.answer(question, audience=Audience.operator()).cache_hit
    for outsider in OUTSIDERS:
        answer = engine.answer(question, audience=outsider)
        assert leaks(shown(answer)) == []
    ceo = engine.answer(question, audience=Audience.of([CEO]))
    assert not ceo.cache_hit and "Vogel" in ceo.text
    assert engine.answer(question, audience=Audience.of([CEO])).cache_hit
    legal = engine.answer(question, audience=Audience.of([LEGAL]))
    assert not legal.cache_hit and "Vogel" in legal.text
    engine.close()


@pytest.mark.parametrize("path", ["answer", "answer_async"])
def test_the_llm_prompt_and_every_query_plan_see_only_readable_documents(
    small_engine, tmp_path: Path, openai_server, path: str
) -> None:
    """Both paths; on the event loop's, the question is searched while its phrasings are written (an earlier
    search than the plan's, the same audience)."""
    openai_server.reset(reply="The codename is in the sources [1].")
    engine = build(small_engine, tmp_path, openai_base_url=openai_server.base_url, multi_query=2, hyde=True)
    question = "What is the acquisition codename and the purchase price?"
    if path == "answer":
        answer = engine.answer(question, audience=Audience.public())
    else:
        answer = asyncio.run(engine.answer_async(question, audience=Audience.public()))
    prompts = " ".join(str(r) for r in openai_server.behaviour.requests)
    assert openai_server.behaviour.requests  # the LLM was asked (rewrites, HyDE, answer) ...
    assert [
        m for m in MARKERS if m in prompts.lower() and m not in answer.question.lower()
    ] == []  # ... blind
    assert not {c.doc_id for c in answer.citations} & RESTRICTED
    engine.close()


# --- 200 generated questions ------------------------------------------------------------------------------------


def generated_questions(doc: Document, n: int = 200) -> list[str]:
    """Questions an outsider would ask to fish for the page: its sentences, their key terms, in many phrasings."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", doc.text) if len(s.split()) > 3]
    sentences = [s.lstrip("# ") for s in sentences]
    stop = {
        "the",
        "and",
        "for",
        "are",
        "its",
        "our",
        "after",
        "with",
        "each",
        "every",
        "only",
        "know",
        "stay",
    }
    terms = []
    for word in re.findall(r"[A-Za-z][A-Za-z']+|\d+", doc.text):
        if len(word) > 3 and word.lower() not in stop and word not in terms:
            terms.append(word)
    templates = [
        "What is {t}?",
        "Tell me about {t}",
        "Who is involved with {t}?",
        "When does {t} happen?",
        "Is there a page about {t}?",
        "{t} details please",
    ]
    questions = list(
        dict.fromkeys([*sentences, *(f"Is it true that {s[0].lower()}{s[1:]}" for s in sentences)])
    )
    i = 0
    while len(questions) < n and i < 100 * n:
        a, b = terms[i % len(terms)], terms[(i * 7 + 3) % len(terms)]
        subject = a if (i // len(terms)) % 2 == 0 else f"{a} {b}"
        question = templates[(i // (2 * len(terms))) % len(templates)].format(t=subject)
        if question not in questions:
            questions.append(question)
        i += 1
    return questions[:n]


@pytest.mark.timeout(600)  # 490 real retrievals, 40 extractive answers
def test_200_generated_questions_leak_nothing_and_the_principal_still_sees_the_page(engine: Engine) -> None:
    questions = generated_questions(ACQUISITION)
    assert len(set(questions)) == 200
    leaked: list[tuple[str, str, list[str]]] = []
    for i, question in enumerate(questions):
        for name, audience in (("public", Audience.public()), ("non-member", OUTSIDERS[1])):
            # The sources path, which ranks exactly as answers do, for all 200 and both audiences; the answer path
            # (extractive answers embed sentences: the slow part) for every fifth, public audience. The 200
            # through every chat and API path: tests/bot/test_permission_paths.py.
            seen, ids = "", set()
            if name == "public" and i % 5 == 0:
                answer = engine.answer(question, audience=audience)
                seen, ids = shown(answer), {c.doc_id for c in answer.citations}
            sources = engine.sources(question, k=10, audience=audience)
            seen += " " + " ".join(f"{c.title} {c.url} {c.snippet} {c.doc_id}" for c in sources)
            ids |= {c.doc_id for c in sources}
            found = leaks(seen)  # answers never echo the question: any marker shown came from a document
            if found or ids & RESTRICTED:
                leaked.append((name, question, found))
    assert leaked == []
    sample = questions[::4]
    found_by_ceo = sum(
        "acquisition" in {c.doc_id for c in engine.sources(q, k=5, audience=Audience.of([CEO]))}
        for q in sample
    )
    assert found_by_ceo >= 0.8 * len(sample), found_by_ceo
