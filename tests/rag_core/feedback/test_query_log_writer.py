"""The query log's writer: logging never waits for the database, rows are written in batches with one commit
each, and reads see every row given before them."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest
from sqlalchemy import event

from rag_core.feedback import FeedbackStore
from tests.rag_core.feedback.test_store import make_answer


def test_rows_given_while_a_commit_is_under_way_are_written_in_one_batch_and_one_commit(
    sqlite_url: str,
) -> None:
    with FeedbackStore(sqlite_url) as store:
        commits: list[int] = []
        first_commit = threading.Event()
        release = threading.Event()

        def on_commit(_conn: object) -> None:
            commits.append(store.buffered)
            if len(commits) == 1:
                first_commit.set()
                assert release.wait(30)  # hold the writer inside its first commit

        event.listen(store._engine, "commit", on_commit)
        first = make_answer()
        store.log_answer(first, platform="slack", channel="C", user="U")
        assert first_commit.wait(30)
        later = [make_answer(f"question {i}") for i in range(50)]
        for answer in later:  # none of these waits for the held commit
            store.log_answer(answer, platform="slack", channel="C", user="U")
            store.link_message(answer.id, platform="slack", channel="C", message_id=answer.id)
        assert store.buffered == 101  # the first row (being committed) and 100 waiting
        release.set()
        assert store.flush(30)
        event.remove(store._engine, "commit", on_commit)
        assert len(commits) == 2  # the first row alone, then the hundred waiting rows together
        assert store.get_answer(later[-1].id) is not None
        assert store.answer_for_message(platform="slack", channel="C", message_id=later[0].id) == later[0].id


def test_a_read_right_after_logging_sees_the_row(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        answer = make_answer()
        store.log_answer(answer, platform="api", channel="t", user="t")
        store.link_message(answer.id, platform="api", channel="t", message_id=answer.id)
        assert store.answer_for_message(platform="api", channel="t", message_id=answer.id) == answer.id


def test_an_answer_logged_twice_keeps_its_first_row_and_the_log_line_holds_no_question(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FeedbackStore(db_url) as store:
        first = make_answer("the first question, private words")
        again = replace(first, question="the second question, private words", text="another text")
        others = [make_answer(f"question {i}") for i in range(3)]
        with caplog.at_level(logging.WARNING, logger="rag_core.feedback.store"):
            store.log_answer(first, platform="slack", channel="C", user="U")
            assert store.flush(30)
            for answer in [others[0], again, *others[1:]]:  # one batch: the duplicate refuses it as a whole
                store.log_answer(answer, platform="slack", channel="C", user="U")
            store.link_message(others[2].id, platform="slack", channel="C", message_id="m1")
            assert store.flush(30)
        record = store.get_answer(first.id)
        assert record is not None and record.question == first.question and record.answer_text == first.text
        assert all(store.get_answer(a.id) is not None for a in others)  # the rest of the batch is written
        assert store.answer_for_message(platform="slack", channel="C", message_id="m1") == others[2].id
        refused = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1 and refused[0].exc_info is None
        assert "private words" not in caplog.text


def test_linking_a_message_again_moves_it_to_the_new_answer(db_url: str) -> None:
    with FeedbackStore(db_url) as store:
        first, second = make_answer("one"), make_answer("two")
        for answer in (first, second):
            store.log_answer(answer, platform="slack", channel="C", user="U")
        store.link_message(first.id, platform="slack", channel="C", message_id="m")
        store.link_message(second.id, platform="slack", channel="C", message_id="m")
        assert store.answer_for_message(platform="slack", channel="C", message_id="m") == second.id
