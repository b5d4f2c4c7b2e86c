"""Concurrent questions are embedded together: one model call for many, each caller with its own vector, the
same vector it would get alone; a failure reaches every caller of the batch."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag_core.engine import Engine
from rag_core.query_batcher import QueryBatcher


class GatedModel:
    """`encode_many` that holds its first call until released, so the next questions gather meanwhile."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        self.entered.set()
        assert self.release.wait(30)
        if self.fail and len(self.calls) > 1:
            raise RuntimeError("model exploded")
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)])


def _until(check, timeout_s: float = 30) -> bool:
    """Polls a condition the batcher offers no wake-up for (how many questions gather)."""
    pause = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return True
        pause.wait(0.01)
    return check()


def test_questions_arriving_while_the_model_is_busy_are_embedded_in_one_batch() -> None:
    model = GatedModel()
    batcher = QueryBatcher(model, window_s=0.0, max_batch=32)
    texts = ["first", *[f"question {i:02d}" + "?" * i for i in range(10)]]
    with ThreadPoolExecutor(len(texts)) as pool:
        first = pool.submit(batcher.encode, texts[0])
        assert model.entered.wait(30)  # the first question is in the model; the others gather
        rest = [pool.submit(batcher.encode, t) for t in texts[1:]]
        assert _until(lambda: batcher.gathering == len(texts) - 1)
        model.release.set()
        vectors = [first.result(30), *(f.result(30) for f in rest)]
    assert [len(c) for c in model.calls] == [1, 10]
    for text, vector in zip(texts, vectors, strict=True):
        assert vector[0] == len(text)  # each caller got its own row
    assert batcher.largest == 10


def test_batches_are_bounded() -> None:
    model = GatedModel()
    model.release.set()
    batcher = QueryBatcher(model, window_s=5.0, max_batch=4)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(batcher.encode, [f"q{i}" for i in range(8)]))
    assert len(results) == 8 and max(len(c) for c in model.calls) <= 4


def test_a_model_failure_reaches_every_caller_of_the_batch() -> None:
    model = GatedModel(fail=True)
    batcher = QueryBatcher(model, window_s=0.0, max_batch=32)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.encode, "first")
        assert model.entered.wait(30)
        rest = [pool.submit(batcher.encode, f"q{i}") for i in range(3)]
        assert _until(lambda: batcher.gathering == 3)
        model.release.set()
        assert first.result(30)[0] == 5
        for future in rest:
            with pytest.raises(RuntimeError, match="model exploded"):
                future.result(30)


def test_the_real_model_gives_each_question_the_vector_it_gets_alone(small_engine: Engine) -> None:
    embedder = small_engine.embedder
    questions = [
        "How do I reset my VPN?",
        "Who gets paged when the primary on-call does not acknowledge?",
        "Are team dinners covered for contractors?",
        "deploy friday",
    ]
    alone = [embedder.backend.encode([q], 1)[0] for q in questions]
    together = embedder._encode_queries(questions)
    for a, b in zip(alone, together, strict=True):
        assert np.allclose(a, b, atol=1e-5)
    with ThreadPoolExecutor(len(questions)) as pool:
        concurrent = list(pool.map(embedder.encode_query, questions))
    for a, b in zip(alone, concurrent, strict=True):
        assert np.allclose(a, b, atol=1e-5)


def test_a_question_embedded_twice_runs_the_model_once(small_engine, monkeypatch) -> None:
    """Retrieval and the answerability check both embed the question: the second time comes from memory, and a
    caller changing its copy changes nothing for the next one."""
    embedder = small_engine.embedder
    real = embedder.backend.model.encode
    seen: list[list[str]] = []

    def counting(texts, **kwargs):
        seen.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(embedder.backend.model, "encode", counting)
    question = "Which team may hire twelve engineers in a year nobody asked about?"
    first = embedder.encode_query(question)
    first[:] = 0.0
    second = embedder.encode_query(question)
    assert [question] in seen and sum(question in t for t in seen) == 1
    assert abs(float(np.linalg.norm(second)) - 1.0) < 1e-3


def test_one_questions_searches_join_a_batch_together_and_each_gets_its_rows() -> None:
    model = GatedModel()
    batcher = QueryBatcher(model, window_s=0.0, max_batch=8)
    plans = [["a question", "phrasing one", "phrasing two"], ["b q", "b phrasing"], ["c"] * 1]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.encode, "busy")
        assert model.entered.wait(30)
        rest = [pool.submit(batcher.encode_many, texts) for texts in plans]
        assert _until(lambda: batcher.gathering == 6)
        model.release.set()
        first.result(30)
        rows = [f.result(30) for f in rest]
    assert [len(c) for c in model.calls] == [1, 6]
    for texts, got in zip(plans, rows, strict=True):
        assert [v[0] for v in got] == [len(t) for t in texts]


def test_rows_that_do_not_fit_the_open_batch_send_it_and_open_the_next() -> None:
    model = GatedModel()
    batcher = QueryBatcher(model, window_s=0.0, max_batch=4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.encode, "busy")
        assert model.entered.wait(30)
        three = pool.submit(batcher.encode_many, ["one", "two", "three"])
        assert _until(lambda: batcher.gathering == 3)
        two = pool.submit(batcher.encode_many, ["four", "fives"])  # 3 + 2 > 4
        assert _until(lambda: batcher.gathering == 2)
        model.release.set()
        results = [first.result(30), three.result(30), two.result(30)]
    assert sorted(len(c) for c in model.calls) == [1, 2, 3]
    assert [v[0] for v in results[2]] == [4, 5]


def _on_a_loop(coro_fn):
    """Run `coro_fn()` on an event loop in its own thread; the thread's result holder."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", asyncio.run(coro_fn())), daemon=True)
    thread.start()
    return thread, result


def test_awaiting_questions_gather_in_one_batch_holding_no_thread() -> None:
    """Fifty questions awaiting on one loop share batches, each gets its own row, and the only thread they use is
    the batcher's (a caller parked on an answer thread would cap a batch at the number of threads)."""
    model = GatedModel()
    batcher = QueryBatcher(model, window_s=0.0, max_batch=64)
    texts = [f"question {i:02d}" + "?" * i for i in range(50)]
    before = set(threading.enumerate())

    async def ask() -> list:
        return list(await asyncio.gather(*(batcher.aencode_many([t]) for t in texts)))

    thread, result = _on_a_loop(ask)
    assert model.entered.wait(30)  # the first question is in the model; the others gather
    assert _until(lambda: batcher.gathering == len(texts) - 1)
    started = set(threading.enumerate()) - before - {thread}
    model.release.set()
    thread.join(30)
    assert [t.name.split("_")[0] for t in started] == [
        "query-embed"
    ]  # besides the loop's, the batcher's only
    assert [len(c) for c in model.calls] == [1, 49]
    assert [row[0][0] for row in result["value"]] == [len(t) for t in texts]
    batcher.close()


def test_threads_and_awaiting_callers_share_a_batch_and_its_failure() -> None:
    model = GatedModel(fail=True)
    batcher = QueryBatcher(model, window_s=0.0, max_batch=32)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.encode, "busy")
        assert model.entered.wait(30)
        from_thread = pool.submit(batcher.encode, "a thread's question")

        async def ask() -> list:
            return await asyncio.gather(batcher.aencode_many(["awaited"]), return_exceptions=True)

        assert _until(lambda: batcher.gathering == 1)
        thread, result = _on_a_loop(ask)
        assert _until(lambda: batcher.gathering == 2)
        model.release.set()
        thread.join(30)
        assert first.result(30)[0] == 4
        with pytest.raises(RuntimeError, match="model exploded"):
            from_thread.result(30)
    assert [len(c) for c in model.calls] == [1, 2]
    (error,) = result["value"]
    assert isinstance(error, RuntimeError) and "model exploded" in str(error)
    batcher.close()
