"""Curated answers as a source: stored in the query log, synced into a real index, cited like any page, with
their own readers, never boosted, expired or flagged when old."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.curated import sync_curated
from connectors.sync import run_sync, select_sources
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from rag_core.feedback.store import utc_naive
from rag_core.permissions import Audience
from rag_core.settings import SourceConfig
from tests.conftest import make_settings

BADGE_Q = "How do I get a parking badge for the office garage?"
BADGE_A = "Ask Maria at reception on the second floor; bring your photo ID and your car's plate number."


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    s = FeedbackStore(f"sqlite:///{tmp_path / 'log.db'}")
    yield s
    s.close()


def test_saved_answers_round_trip_through_export_and_import(store: FeedbackStore, tmp_path: Path) -> None:
    a = cur.add_answer(store, BADGE_Q, BADGE_A, author="Dana", channel_name="ops", thread_url="https://x/t/1")
    b = cur.add_answer(store, "Guest wifi?", "hunter2", author="Sam", readers=["Legal@X.com", "group:Legal"])
    assert b.readers == ["group:legal", "user:legal@x.com"]
    lines = list(cur.export_lines(store))
    assert [json.loads(line)["id"] for line in lines] == [a.id, b.id]
    assert "author_hash" not in lines[0]

    other = FeedbackStore(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert cur.import_lines(other, lines) == (2, 0)
        assert cur.import_lines(other, lines[:1]) == (0, 1)  # the same id replaces
        back = cur.list_answers(other)
        assert [(s.id, s.question, s.author, s.readers) for s in back] == [
            (a.id, BADGE_Q, "Dana", None),
            (b.id, "Guest wifi?", "Sam", ["group:legal", "user:legal@x.com"]),
        ]
        with pytest.raises(cur.CuratedError, match="line 2"):
            cur.import_lines(other, [lines[0], '{"question": "no answer"}'])
        with pytest.raises(cur.CuratedError, match="not a principal"):
            cur.add_answer(other, "q", "a", author="x", readers=["nobody"])
        with pytest.raises(cur.CuratedError, match="needs the answer"):
            cur.add_answer(other, "q", "  ", author="x")
    finally:
        other.close()


def test_a_saved_answer_is_cited_with_who_where_and_when_then_gone_when_removed(
    engine: Engine, store: FeedbackStore
) -> None:
    settings = engine.settings
    assert engine.answer(BADGE_Q).abstained
    saved = cur.add_answer(
        store, BADGE_Q, BADGE_A, author="Dana", channel_name="ops", thread_url="https://slack.example/t/1"
    )
    report = sync_curated(store, settings, engine.index_writer())
    assert report.ok and report.added == 1

    answer = engine.answer(BADGE_Q)
    assert not answer.abstained and "Maria at reception" in answer.text
    [cite] = [c for c in answer.citations if c.source == "answers"]
    assert cite.title == BADGE_Q and cite.url == "https://slack.example/t/1"
    assert cite.heading_path[0].startswith("Answered by Dana in #ops, ")

    cur.update_answer(store, saved.id, answer="Ask Maria at reception; badges are free.")
    assert sync_curated(store, settings, engine.index_writer()).updated == 1
    assert "badges are free" in engine.answer(BADGE_Q).text

    assert cur.remove_answer(store, saved.id)
    report = sync_curated(store, settings, engine.index_writer())
    assert report.ok and report.deleted == 1  # the last one removed empties the source: no "export missing"
    assert engine.answer(BADGE_Q).abstained


def test_a_restricted_answer_reaches_only_its_readers(engine: Engine, store: FeedbackStore) -> None:
    cur.add_answer(store, BADGE_Q, BADGE_A, author="Dana", readers=["group:slack:cpriv"])
    sync_curated(store, engine.settings, engine.index_writer())
    assert engine.answer(BADGE_Q).abstained  # the public audience
    assert not engine.sources(BADGE_Q) or all(c.source != "answers" for c in engine.sources(BADGE_Q))
    assert engine.answer(BADGE_Q, audience=Audience.of(["user:x@y.z"])).abstained
    member = engine.answer(BADGE_Q, audience=Audience.of(["group:slack:cpriv"]))
    assert not member.abstained and member.citations[0].readers == ["group:slack:cpriv"]


def test_curated_answers_get_no_boost_over_a_better_matching_page(
    engine: Engine, store: FeedbackStore
) -> None:
    cur.add_answer(store, "VPN is slow in the afternoon", "Use the EU gateway after 2 pm.", author="Dana")
    sync_curated(store, engine.settings, engine.index_writer())
    answer = engine.answer("How do I reset my VPN?")
    assert answer.citations[0].title == "VPN how-to"


def test_old_answers_are_flagged_or_expired(engine: Engine, store: FeedbackStore) -> None:
    old = utc_naive() - timedelta(days=200)
    cur.add_answer(store, BADGE_Q, BADGE_A, author="Dana", at=old)
    flagged = engine.settings.model_copy(update={"knowledge_max_age_days": 90})
    sync_curated(store, flagged, engine.index_writer())
    [cite] = [c for c in engine.answer(BADGE_Q).citations if c.source == "answers"]
    assert cite.heading_path[0].endswith("(may be out of date)")

    expiring = flagged.model_copy(update={"knowledge_expire": True})
    report = sync_curated(store, expiring, engine.index_writer())
    assert report.deleted == 1 and "expired" in report.skipped[0][1]
    assert engine.answer(BADGE_Q).abstained


def test_the_curated_source_joins_configured_sources_and_syncs_by_name(tmp_path: Path) -> None:
    docs = SourceConfig(name="wiki", kind="confluence", path=tmp_path)
    settings = make_settings(tmp_path, sources=[docs])
    assert [(s.name, s.kind, s.public) for s in settings.sources] == [
        ("wiki", "confluence", True),
        ("answers", "curated", True),
    ]
    assert [c.name for c in select_sources(settings, None)] == ["wiki"]  # synced when answers change
    assert [c.name for c in select_sources(settings, None, curated=True)] == ["wiki", "answers"]
    assert [c.kind for c in select_sources(settings, "answers")] == ["curated"]
    off = make_settings(tmp_path, sources=[docs], knowledge_enabled=False)
    assert [s.name for s in off.sources] == ["wiki"]
    # Configured by hand (e.g. to limit it to some channels): used as it is, not added twice.
    mine = SourceConfig(name="kb", kind="curated", path=tmp_path, public=False, allowed_channels=["C1"])
    assert make_settings(tmp_path, sources=[docs, mine]).sources == [docs, mine]


def test_ragbot_sync_answers_reads_the_settings_database(engine: Engine, tmp_path: Path) -> None:
    settings = engine.settings.model_copy(update={"data_dir": tmp_path / "data"})
    with FeedbackStore.from_settings(settings) as store:
        cur.add_answer(store, BADGE_Q, BADGE_A, author="Dana")
    [report] = run_sync(settings, engine.index_writer(), source="answers")
    assert report.ok and report.added == 1
