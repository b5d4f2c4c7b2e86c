"""The query log: answers with citations, message links, votes, durability across restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from rag_core.errors import ConfigError, UserError
from rag_core.feedback import FeedbackStore, UnknownAnswer
from rag_core.feedback.store import database_url
from rag_core.settings import Settings
from rag_core.types import Answer, Citation, Vote

ROOT = Path(__file__).resolve().parents[3]


def make_answer(question: str = "How do I deploy?", **fields) -> Answer:
    defaults = dict(
        text="Run `make deploy` [1].",
        citations=[
            Citation(
                1,
                "Deploys",
                "https://wiki/deploys",
                "Run make deploy",
                0.82,
                "handbook",
                "eng/deploys",
                ["Eng"],
            ),
            Citation(
                2, "Rollbacks", "https://wiki/rollbacks", "Roll back with", 0.41, "handbook", "eng/rollbacks"
            ),
        ],
        tokens_in=900,
        tokens_out=60,
        cost_usd=0.00017,
        timings_ms={"retrieve": 40.0, "rerank": 120.0, "generate": 800.0, "total": 975.5},
        model="gpt-4o-mini",
    )
    defaults.update(fields)
    return Answer(question=question, **defaults)


def test_an_answer_is_logged_with_everything_the_report_needs(db_url: str) -> None:
    answer = make_answer(cache_hit=True)
    at = datetime(2025, 3, 4, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    with FeedbackStore(db_url, user_hash_salt="pepper") as store:
        store.log_answer(
            answer,
            platform="slack",
            channel="C42",
            user="U7",
            arm="b",
            overrides={"use_reranker": False},
            at=at,
        )
        record = store.get_answer(answer.id)

    assert record is not None
    assert (record.platform, record.channel, record.question) == ("slack", "C42", "How do I deploy?")
    assert record.answer_text == "Run `make deploy` [1]."
    assert record.created_at == datetime(2025, 3, 4, 8, 30)  # stored as UTC
    assert record.outcome == "answered" and not record.abstained and record.cache_hit
    assert (record.tokens_in, record.tokens_out, record.cost_usd) == (900, 60, pytest.approx(0.00017))
    assert record.latency_ms == 975.5
    assert record.timings_ms == {"retrieve": 40.0, "rerank": 120.0, "generate": 800.0, "total": 975.5}
    assert (record.arm, record.overrides, record.model) == ("b", {"use_reranker": False}, "gpt-4o-mini")
    assert [(c.n, c.source, c.doc_id, c.title, c.score) for c in record.citations] == [
        (1, "handbook", "eng/deploys", "Deploys", pytest.approx(0.82)),
        (2, "handbook", "eng/rollbacks", "Rollbacks", pytest.approx(0.41)),
    ]
    assert record.citations[0].heading_path == ["Eng"]
    # The asker is stored hashed with the salt, never as the platform id.
    assert record.user_hash != "U7" and "U7" not in record.user_hash
    assert record.user_hash == store.hash_user("U7")
    assert FeedbackStore(db_url, user_hash_salt="other").hash_user("U7") != record.user_hash


def test_outcome_defaults_from_the_answer_and_is_checked(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        abstained = make_answer(abstained=True, citations=[])
        store.log_answer(abstained, platform="discord", channel="1", user="u")
        limited = make_answer(text="", citations=[], timings_ms={})
        store.log_answer(limited, platform="discord", channel="1", user="u", outcome="rate_limited")
        assert store.get_answer(abstained.id).outcome == "abstained"
        assert store.get_answer(limited.id).outcome == "rate_limited"
        assert store.get_answer(limited.id).latency_ms == 0
        with pytest.raises(ValueError, match="unknown outcome 'maybe'"):
            store.log_answer(make_answer(), platform="slack", channel="C", user="u", outcome="maybe")


def test_logging_the_same_answer_id_twice_keeps_the_first(db_url: str) -> None:
    answer = make_answer()
    with FeedbackStore(db_url) as store:
        store.log_answer(answer, platform="slack", channel="C1", user="U1")
        answer.text = "changed"
        store.log_answer(answer, platform="slack", channel="C2", user="U1")
        record = store.get_answer(answer.id)
    assert (record.channel, record.answer_text) == ("C1", "Run `make deploy` [1].")


def test_votes_are_linked_to_the_answer_through_its_message_replaced_and_retracted(db_url: str) -> None:
    answer = make_answer()
    with FeedbackStore(db_url) as store:
        store.log_answer(answer, platform="slack", channel="C1", user="U1")
        store.link_message(answer.id, platform="slack", channel="C1", message_id="1700000000.000100")

        assert (
            store.answer_for_message(platform="slack", channel="C1", message_id="1700000000.000100")
            == answer.id
        )
        assert store.answer_for_message(platform="slack", channel="C1", message_id="other") is None
        assert (
            store.answer_for_message(platform="discord", channel="C1", message_id="1700000000.000100") is None
        )

        store.record_vote(Vote(answer.id, "U2", 1, "slack", "C1"))
        store.record_vote(Vote(answer.id, "U3", -1, "slack", "C1"))
        assert sorted(v.value for v in store.votes(answer.id)) == [-1, 1]

        # One vote per person: a 👎 after a 👍 replaces it.
        store.record_vote(Vote(answer.id, "U2", -1, "slack", "C1"))
        assert sorted(v.value for v in store.votes(answer.id)) == [-1, -1]

        # Removing the 👍 reaction must not remove the 👎 that replaced it.
        assert store.retract_vote(answer_id=answer.id, user="U2", value=1) is False
        assert store.retract_vote(answer_id=answer.id, user="U2", value=-1) is True
        assert store.retract_vote(answer_id=answer.id, user="U2") is False
        votes = store.votes(answer.id)
        assert [(v.value, v.platform, v.channel) for v in votes] == [(-1, "slack", "C1")]
        assert votes[0].user == store.hash_user("U3")  # voters are hashed like askers


def test_bad_votes_and_links_are_refused_with_a_clear_error(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        answer = make_answer()
        store.log_answer(answer, platform="slack", channel="C1", user="U1")
        with pytest.raises(UnknownAnswer, match="no answer with id 'nope'"):
            store.record_vote(Vote("nope", "U2", 1))
        with pytest.raises(UnknownAnswer, match="'nope'"):
            store.link_message("nope", platform="slack", channel="C1", message_id="1")
        with pytest.raises(ValueError, match="a vote is \\+1 or -1, not 2"):
            store.record_vote(Vote(answer.id, "U2", 2))
        assert store.votes(answer.id) == []


def test_a_restart_loses_nothing(db_url: str) -> None:
    answer = make_answer()
    store = FeedbackStore(db_url)
    store.log_answer(answer, platform="discord", channel="99", user="U1", arm="a")
    store.link_message(answer.id, platform="discord", channel="99", message_id="1234")
    store.record_vote(Vote(answer.id, "U2", -1, "discord", "99"))
    store.close()

    reopened = FeedbackStore(db_url)  # runs the migrations again: a no-op on an up-to-date schema
    try:
        record = reopened.get_answer(answer.id)
        assert record is not None and record.arm == "a" and len(record.citations) == 2
        assert reopened.answer_for_message(platform="discord", channel="99", message_id="1234") == answer.id
        assert [v.value for v in reopened.votes(answer.id)] == [-1]
        with reopened.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM ragbot_alembic_version")).scalar() == "0004"
    finally:
        reopened.close()


def test_a_killed_process_loses_nothing_it_logged(db_url: str) -> None:
    """The bot process dies without closing anything (SIGKILL, OOM): what it logged is still there."""
    child = textwrap.dedent(
        f"""
        import os
        from rag_core.feedback import FeedbackStore
        from rag_core.types import Answer, Vote
        store = FeedbackStore({db_url!r})
        answer = Answer("Who owns billing?", "Team Ledger [1].", [], id="killed-1")
        store.log_answer(answer, platform="slack", channel="C1", user="U1")
        store.link_message("killed-1", platform="slack", channel="C1", message_id="42.1")
        store.record_vote(Vote("killed-1", "U2", 1, "slack", "C1"))
        os._exit(9)  # no close, no atexit, no flush
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 9, done.stderr
    with FeedbackStore(db_url) as store:
        assert store.get_answer("killed-1").question == "Who owns billing?"
        assert store.answer_for_message(platform="slack", channel="C1", message_id="42.1") == "killed-1"
        assert [v.value for v in store.votes("killed-1")] == [1]


def test_the_schema_comes_from_the_migrations(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        tables = set(inspect(store.engine).get_table_names())
        with store.engine.connect() as conn:
            journal_mode = conn.execute(text("PRAGMA journal_mode")).scalar()
    assert {"answers", "answer_citations", "answer_messages", "votes", "ragbot_alembic_version"} <= tables
    assert journal_mode == "wal"


def test_from_settings_uses_a_sqlite_file_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    with FeedbackStore.from_settings(settings) as store:
        store.log_answer(make_answer(), platform="slack", channel="C", user="U")
    assert (tmp_path / "data" / "ragbot.db").is_file()


def test_plain_postgres_urls_get_the_installed_psycopg_driver() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db"):
        assert database_url(Settings(database_url=url)) == "postgresql+psycopg://u@h/db"
    assert database_url(Settings(database_url="postgresql+psycopg://u@h/db")) == "postgresql+psycopg://u@h/db"


def test_an_unreachable_database_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match="cannot be opened") as caught:
        FeedbackStore("postgresql+psycopg://bot:s3cret@127.0.0.1:1/ragbot?connect_timeout=2")
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1/ragbot" in str(caught.value)


def test_a_malformed_database_url_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match="RAG_DATABASE_URL is not a database URL"):
        FeedbackStore("not a url")


def test_times_without_a_zone_are_taken_as_utc(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        answer = make_answer()
        before = datetime.now(UTC).replace(tzinfo=None)
        store.log_answer(answer, platform="slack", channel="C", user="U")
        created = store.get_answer(answer.id).created_at
    assert before <= created <= datetime.now(UTC).replace(tzinfo=None)
