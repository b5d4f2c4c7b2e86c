"""Token counting helpers: the one bound on thread history the engine applies."""

from __future__ import annotations

from rag_core.tokens import bound_history
from rag_core.types import Turn


def test_history_keeps_the_most_recent_turns_within_the_token_budget() -> None:
    turns = [Turn("user", "old " * 300), Turn("assistant", "middle answer"), Turn("user", "latest question")]
    assert [t.text for t in bound_history(turns, 50)] == ["middle answer", "latest question"]
    assert bound_history(turns, 0) == []
