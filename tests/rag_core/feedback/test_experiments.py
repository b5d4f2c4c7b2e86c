"""A/B arm assignment: deterministic per user, balanced, and a malformed experiment is a clear error."""

from __future__ import annotations

import logging
import uuid
from collections import Counter

import pytest

from rag_core.errors import ConfigError
from rag_core.feedback.experiments import assign_arm, load_experiment
from rag_core.settings import Settings

RERANK_OFF = {"name": "rerank-off", "arms": {"control": {}, "no_rerank": {"use_reranker": False, "top_k": 4}}}


def test_no_experiment_means_no_arm_and_no_overrides() -> None:
    assert assign_arm("U1", Settings(ab_experiment=None)) == (None, {})


def test_a_user_always_gets_the_same_arm_and_its_overrides() -> None:
    settings = Settings(ab_experiment=RERANK_OFF)
    first = {f"U{i}": assign_arm(f"U{i}", settings) for i in range(200)}
    fresh = Settings(ab_experiment=RERANK_OFF)  # e.g. another process, or after a restart
    again = {f"U{i}": assign_arm(f"U{i}", fresh) for i in range(200)}
    assert first == again
    for arm, overrides in first.values():
        assert overrides == RERANK_OFF["arms"][arm]
    # The JSON key order of the arms does not change anyone's arm.
    reordered = {"name": "rerank-off", "arms": dict(reversed(list(RERANK_OFF["arms"].items())))}
    reordered_settings = Settings(ab_experiment=reordered)
    assert {u: assign_arm(u, reordered_settings) for u in first} == first


def test_arms_are_balanced_over_ten_thousand_users() -> None:
    settings = Settings(ab_experiment=RERANK_OFF)
    counts = Counter(assign_arm(f"user-{i}", settings)[0] for i in range(10_000))
    assert set(counts) == {"control", "no_rerank"}
    assert all(4_800 <= n <= 5_200 for n in counts.values()), counts  # 50 % ± 2 % (4 sigma is ±200)


def test_a_new_experiment_name_reshuffles_users() -> None:
    first, second = (
        Settings(ab_experiment=RERANK_OFF),
        Settings(ab_experiment={**RERANK_OFF, "name": "rerank-2"}),
    )
    users = [f"U{i}" for i in range(1000)]
    same = sum(assign_arm(u, first)[0] == assign_arm(u, second)[0] for u in users)
    assert 400 < same < 600  # independent assignments agree about half the time


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"name": "x", "arms": {"a": {}}}, "at least two arms"),
        ({"name": "x", "arms": {"a": {}, "b": {"chunk_tokens": 128}}}, "unknown setting 'chunk_tokens'"),
        ({"name": "x", "arms": {"a": {}, "b": {"top_k": "five"}}}, "top_k='five' has the wrong type"),
        ({"name": "x", "arms": {"a": {}, "b": {"top_k": True}}}, "top_k=True has the wrong type"),
        ({"arms": {"a": {}, "b": {}}}, "name"),
        ({"name": "x", "arms": {"a": {}, "b": {}}, "weights": [1, 2]}, "weights"),
    ],
)
def test_a_malformed_experiment_names_what_is_wrong(experiment: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="RAG_AB_EXPERIMENT is invalid") as caught:
        load_experiment(Settings(ab_experiment=experiment))
    assert message in str(caught.value)


def test_a_malformed_experiment_is_switched_off_with_an_error_not_every_question(
    caplog: pytest.LogCaptureFixture,
) -> None:
    arm = f"b-{uuid.uuid4().hex}"  # a configuration no other test has logged (errors are logged once per config)
    settings = Settings(ab_experiment={"name": "x", "arms": {"a": {}, arm: {"chunk_tokens": 128}}})
    with caplog.at_level(logging.ERROR, logger="rag_core.feedback.experiments"):
        assert assign_arm("U1", settings) == (None, {})
        assert assign_arm("U2", settings) == (None, {})
    assert "unknown setting 'chunk_tokens'" in caplog.text
    assert len(caplog.records) == 1  # logged once, not per question


def test_the_experiment_is_read_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_AB_EXPERIMENT", '{"name": "k", "arms": {"a": {"top_k": 3}, "b": {"top_k": 8}}}')
    arm, overrides = assign_arm("U1", Settings())
    assert overrides == {"top_k": {"a": 3, "b": 8}[arm]}
