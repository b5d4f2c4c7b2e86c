"""The embedded store's HNSW rebuild runs in a child process on a copy, swapped in without stopping queries."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_core.store import Where
from rag_core.store.edge import EdgeStore, held_elsewhere
from tests.rag_core.test_store_contract import DIM, point

VISIBLE = Where.visible(1)


def _store(tmp_path: Path, n: int = 40) -> EdgeStore:
    store = EdgeStore(tmp_path / "edge" / "c")
    store.ensure_collection(DIM)
    rng = np.random.default_rng(0)
    store.upsert([point(f"d{i}", 0, rng.standard_normal(DIM), {i % 7: 1.0}) for i in range(n)])
    return store


def _ids(store: EdgeStore) -> list[str]:
    dense, _ = store.search([1.0] + [0.0] * (DIM - 1), point("q", 0, [1] * DIM, {}).sparse, 5, VISIBLE)
    return [h.id for h in dense]


def test_optimize_swaps_in_the_built_copy_and_a_restart_opens_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = _ids(store)
    store.optimize()
    assert store.count() == 40 and _ids(store) == before
    current = (tmp_path / "edge" / "c.current").read_text()
    assert current.startswith("c.opt-") and (tmp_path / "edge" / current).is_dir()
    assert not (tmp_path / "edge" / "c").exists()  # the replaced folder is gone
    store.upsert([point("late", 0, [1] * DIM, {1: 1.0})])  # writes go to the swapped-in shard
    store.close()
    reopened = EdgeStore(tmp_path / "edge" / "c")
    try:
        assert reopened.count() == 41
    finally:
        reopened.close()


def test_a_failed_build_leaves_the_index_serving_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import rag_core.store.edge as edge

    store = _store(tmp_path)
    monkeypatch.setattr(edge, "_OPTIMIZE_CHILD", "import sys; sys.stderr.write('disk full'); sys.exit(3)")
    with caplog.at_level(logging.WARNING, logger="rag_core.store.edge"):
        store.optimize()
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "index_optimize_failed"]
    assert record.detail == "disk full" and record.error == "CalledProcessError"
    assert store.count() == 40 and _ids(store)
    assert not list((tmp_path / "edge").glob("c.opt-*"))  # the half-built copy is removed
    store.close()


def test_a_write_during_the_build_keeps_the_unoptimized_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    real_run = subprocess.run

    def run_and_write(*args: Any, **kwargs: Any) -> Any:
        store.upsert([point("meanwhile", 0, [1] * DIM, {1: 1.0})])  # the copy being built misses this
        return real_run(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run_and_write)
    with caplog.at_level(logging.WARNING, logger="rag_core.store.edge"):
        store.optimize()
    assert any(getattr(r, "event", "") == "index_optimize_discarded" for r in caplog.records)
    assert store.count() == 41  # the write is kept
    assert not list((tmp_path / "edge").glob("c.opt-*"))
    store.close()


def test_leftover_builds_are_removed_and_the_lock_is_visible(tmp_path: Path) -> None:
    store = _store(tmp_path, n=3)
    store.close()
    stale = tmp_path / "edge" / "c.opt-deadbeef"
    stale.mkdir()
    reopened = EdgeStore(tmp_path / "edge" / "c")
    try:
        assert not stale.exists() and reopened.count() == 3
        assert held_elsewhere(tmp_path / "edge" / "c")
    finally:
        reopened.close()
    assert not held_elsewhere(tmp_path / "edge" / "c")
