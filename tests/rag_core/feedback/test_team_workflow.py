"""Escalations, hidden documents and per-document votes in the query log (SQLite and PostgreSQL), the report's
hand-off figures from a seeded log, and the migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from rag_core.feedback import FeedbackStore, UnknownAnswer
from rag_core.feedback import workflow as wf
from rag_core.feedback.doc_votes import StoredDocSignals, aggregate, logged_doc_votes
from rag_core.feedback.report import render_text
from rag_core.feedback.report_data import collect
from rag_core.settings import Settings
from rag_core.types import Answer, Citation, Vote

NOW = datetime(2026, 11, 30, 12, 0)


def _answer(question: str, docs: list[str], abstained: bool = False) -> Answer:
    cites = [Citation(i, d.title(), f"https://x/{d}", "s", 0.5, "wiki", d) for i, d in enumerate(docs, 1)]
    return Answer(question=question, text="a", citations=cites, abstained=abstained)


def test_migration_adds_the_tables(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        tables = set(inspect(store.engine).get_table_names())
    assert {"escalations", "hidden_documents"} <= tables


def test_escalate_once_resolve_once(db_url: str) -> None:
    with FeedbackStore(db_url) as store:
        a = _answer("How do I deploy?", ["deploy"])
        store.log_answer(a, platform="slack", channel="C1", user="U1")
        assert wf.escalate(store, a.id, platform="slack", channel="C1", targets=["UHELP"], user="U1")
        assert not wf.escalate(store, a.id, platform="slack", channel="C1", targets=["UHELP"], user="U2")
        wf.set_escalation_message(store, a.id, "123.4")
        record = wf.get_escalation(store, a.id)
        assert record is not None and record.question == "How do I deploy?" and record.targets == ["UHELP"]
        assert wf.resolve_escalation(store, a.id, user="UHELP")
        assert not wf.resolve_escalation(store, a.id, user="UHELP")
        with pytest.raises(UnknownAnswer):
            wf.escalate(store, "nope", platform="slack", channel="C1", targets=["U"], user="U1")


def test_hide_and_unhide(db_url: str) -> None:
    with FeedbackStore(db_url) as store:
        assert wf.hide_document(store, "wiki", "deploy", title="Deploy", user="UADMIN")
        assert not wf.hide_document(store, "wiki", "deploy", title="Deploy", user="UADMIN")
        assert wf.hidden_documents(store) == {("wiki", "deploy")}
        assert wf.unhide_document(store, "wiki", "deploy") and not wf.unhide_document(store, "wiki", "deploy")
        assert wf.hidden_documents(store) == set()


def test_votes_are_credited_to_cited_documents_with_decay_and_damping() -> None:
    fresh, old = NOW, NOW - timedelta(days=30)
    votes = [
        ([("wiki", "a"), ("wiki", "b")], 1, fresh),
        ([("wiki", "a")], 1, old),
        ([("wiki", "b")], -1, fresh),
    ]
    weights = aggregate(votes, NOW, half_life_days=30, prior=3)
    assert weights[("wiki", "a")] == pytest.approx(1.5 / 4.5)  # 1 + 0.5 (a half-life old)
    assert ("wiki", "b") not in weights  # +1 and -1: no signal
    assert aggregate([([("wiki", "a")], -1, NOW)], NOW, 30, 3)[("wiki", "a")] == pytest.approx(-0.25)


def test_votes_on_abstentions_do_not_count_for_their_closest_sources(sqlite_url: str, tmp_path: Path) -> None:
    with FeedbackStore(sqlite_url) as store:
        good, idk = _answer("q1", ["a", "b"]), _answer("q2", ["c"], abstained=True)
        for a in (good, idk):
            store.log_answer(a, platform="slack", channel="C1", user="U1")
            store.record_vote(Vote(answer_id=a.id, user="U2", value=1))
        [(docs, value, _at)] = logged_doc_votes(store)
        assert sorted(docs) == [("wiki", "a"), ("wiki", "b")] and value == 1
        signals = StoredDocSignals(store, Settings(_env_file=None, data_dir=tmp_path))
        assert set(signals.weights()) == {("wiki", "a"), ("wiki", "b")}
        wf.hide_document(store, "wiki", "a", title="A", user="UADMIN")
        assert signals.hidden() == set()  # read at most every feedback_refresh_s...
        signals.invalidate()
        assert signals.hidden() == {("wiki", "a")}  # ...unless invalidated (what hide/unhide do)


def test_a_failing_database_keeps_the_last_signals(sqlite_url: str, tmp_path: Path, caplog) -> None:
    store = FeedbackStore(sqlite_url)
    wf.hide_document(store, "wiki", "a", title="A", user="UADMIN")
    signals = StoredDocSignals(store, Settings(_env_file=None, data_dir=tmp_path))
    assert signals.hidden() == {("wiki", "a")}
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE hidden_documents")
    signals.invalidate()
    assert signals.hidden() == {("wiki", "a")}  # still hidden: a broken database never un-hides
    assert "reading document votes failed" in caplog.text
    store.close()


def test_report_counts_escalations_per_channel_and_lists_the_questions(sqlite_url: str) -> None:
    """A seeded log: 3 escalations in C1 (one resolved, one on an "I don't know"), 1 in C2, 1 too old."""
    with FeedbackStore(sqlite_url) as store:
        seeded = [
            ("C1", "How do I deploy on Fridays?", False, True, 1),
            ("C1", "Who approves expenses over $500?", True, False, 2),
            ("C1", "Where is the VPN config?", False, False, 3),
            ("C2", "What is the on-call rota?", False, False, 4),
            ("C2", "Old question", False, False, 40),
        ]
        for channel, question, abstained, resolved, days_ago in seeded:
            a = _answer(question, ["a"], abstained)
            at = NOW - timedelta(days=days_ago)
            store.log_answer(a, platform="slack", channel=channel, user="U1", at=at)
            wf.escalate(store, a.id, platform="slack", channel=channel, targets=["UHELP"], user="U1", at=at)
            if resolved:
                wf.resolve_escalation(store, a.id, user="UHELP")
        data = collect(store.engine, days=7, now=NOW.replace(tzinfo=UTC))
    figures = data.escalations
    assert [(c.channel, c.escalated, c.resolved) for c in figures.channels] == [("C1", 3, 1), ("C2", 1, 0)]
    assert [q.question for q in figures.questions] == [
        "How do I deploy on Fridays?",
        "Who approves expenses over $500?",
        "Where is the VPN config?",
        "What is the on-call rota?",
    ]
    text = render_text(data)
    assert "Hand-offs to a person, per channel" in text and "Who approves expenses over $500?" in text
    print(text)
