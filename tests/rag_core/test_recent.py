"""The bounded most-recently-used store the embedder keeps its vectors in."""

from __future__ import annotations

import numpy as np

from rag_core.recent import Recent


def test_a_count_budget_drops_the_least_recently_used() -> None:
    recent: Recent[str] = Recent(2)
    recent.keep({"a": "A", "b": "B"})
    assert recent.found(["a"]) == {"a": "A"}  # "a" is now the most recent
    recent.keep({"c": "C"})
    assert recent.keys() == ["a", "c"] and recent.used == 2


def test_a_byte_budget_counts_the_values_sizes_and_keeps_the_first_value_of_a_key() -> None:
    recent: Recent[np.ndarray] = Recent(100, lambda v: v.nbytes)
    recent.keep({"x": np.zeros(10, np.float32)})  # 40 bytes
    recent.keep({"x": np.ones(10, np.float32), "y": np.zeros(10, np.float32)})
    assert recent.used == 80 and recent.found(["x"])["x"][0] == 0.0
    recent.keep({"z": np.zeros(10, np.float32)})  # 120 > 100: the least recent ("y") goes
    assert recent.keys() == ["x", "z"] and recent.used == 80
    recent.budget = 0
    recent.keep({})
    assert not recent and recent.used == 0
    recent.keep({"w": np.zeros(1, np.float32)})
    recent.clear()
    assert recent.used == 0 and recent.found(["w"]) == {}
