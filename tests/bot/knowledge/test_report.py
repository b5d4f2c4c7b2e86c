"""The report's review queue (abstentions and 👎'd answers grouped by similar question, with count and link) and
the curated answers' use, votes, age and "cited pages changed" flags, on a real query log and index."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.knowledge import report_args
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from rag_core.feedback.report import render_html, render_text
from rag_core.feedback.report_data import collect
from rag_core.feedback.store import utc_naive
from rag_core.types import Answer, Citation, Vote

PARKING = [
    "How do I get a parking badge?",
    "how do i get a parking badge",
    "How can I get a badge for the parking garage?",
]


def _log(
    store: FeedbackStore, question: str, *, abstained: bool, ts: str, citations=(), user: str = "U1"
) -> str:
    answer = Answer(question=question, text="…", citations=list(citations), abstained=abstained)
    store.log_answer(answer, platform="slack", channel="C1", user=user)
    store.link_message(answer.id, platform="slack", channel="C1", message_id=ts)
    return answer.id


def test_review_queue_groups_similar_questions_and_curated_answers_show_use_votes_and_staleness(
    engine: Engine, tmp_path: Path
) -> None:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        for i, q in enumerate(PARKING):
            _log(store, q, abstained=True, ts=f"100.{i}", user=f"U{i}")
        _log(store, "What is the airspeed of an unladen swallow?", abstained=True, ts="200.1")
        bad = _log(store, "How do I deploy on a Friday?", abstained=False, ts="300.1")
        store.record_vote(Vote(answer_id=bad, user="U9", value=-1))
        _log(store, "How do I reset my VPN?", abstained=False, ts="400.1")  # answered, not 👎'd: not queued

        old = utc_naive() - timedelta(days=120)
        saved = cur.add_answer(
            store,
            "Parking badges?",
            "Ask Maria.",
            author="Dana",
            cited=[{"source": "eng-wiki", "doc_id": "deploy", "version": "v0"}],  # the index holds v1 now
            at=old,
        )
        fresh = cur.add_answer(store, "Guest wifi?", "hunter2", author="Sam")
        cite = Citation(1, "Parking badges?", "", "Ask Maria.", 0.9, "answers", saved.id)
        used = _log(store, "parking badge please", abstained=False, ts="500.1", citations=[cite])
        store.record_vote(Vote(answer_id=used, user="U3", value=1))

        settings = engine.settings.model_copy(update={"knowledge_max_age_days": 90})
        data = collect(store.engine, 7, knowledge=report_args(settings, engine))
    finally:
        store.close()

    review = data.knowledge.review
    assert review[0].count == 3 and review[0].askers == 3 and review[0].abstained == 3
    assert review[0].question == PARKING[-1] and len(review[0].wordings) == 3
    assert review[0].link == "https://slack.com/archives/C1/p1002"
    by_question = {g.question: g for g in review}
    assert by_question["How do I deploy on a Friday?"].down == 1
    assert "How do I reset my VPN?" not in by_question and len(review) == 3

    uses = {c.answer.id: c for c in data.knowledge.curated}
    assert (uses[saved.id].uses, uses[saved.id].up, uses[saved.id].down) == (1, 1, 0)
    assert uses[saved.id].old and uses[saved.id].changed == [saved.cited[0]]
    assert (uses[fresh.id].uses, uses[fresh.id].old, uses[fresh.id].changed) == (0, False, [])

    text = render_text(data)
    assert "Review queue" in text and "(+2 similar)" in text
    assert "cited pages changed: deploy" in text and "old" in text
    page = render_html(data)
    assert "<h2>Review queue</h2>" in page and 'href="https://slack.com/archives/C1/p1002"' in page
    assert "<h2>Curated answers</h2>" in page and "120 d" in page


def test_without_an_embedder_questions_group_by_wording(tmp_path: Path) -> None:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        for i, q in enumerate(PARKING):
            _log(store, q, abstained=True, ts=f"100.{i}")
        data = collect(store.engine, 7)
    finally:
        store.close()
    assert sorted(g.count for g in data.knowledge.review) == [1, 2]  # the first two differ only in case
    assert not data.knowledge.versions_known
