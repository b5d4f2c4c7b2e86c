"""Question embeddings (and the answerability check's token vectors) batched across concurrent requests.

Each question is one short text; embedding them one at a time under the model's lock made concurrent answers
queue on it. Here the first caller of a batch gathers the questions arriving within a short window (or while the
model is busy with the previous batch), up to a bounded size, and embeds them in one call; every caller gets its
own row. No thread waits longer than the window plus one batch. On an event loop, `aencode_many` waits holding no
thread: a batch an awaiting caller leads runs on the batcher's own thread, so how many questions share a batch is
not capped by how many answer threads there are.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np

# What one batch call gives: a row per text, sliceable (an array of vectors, or a list of token-vector arrays).
R = TypeVar("R")


class _Batch:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.closed = False
        self.done = threading.Event()
        self.vectors: Any = None  # the batch call's result (type R of the batcher)
        self.error: BaseException | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []  # awaiting callers


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled caller's future is done already
        waiter.set_result(None)


class QueryBatcher(Generic[R]):
    """`encode(text)` from any thread; concurrent calls share one `encode_many(texts)` call."""

    def __init__(
        self,
        encode_many: Callable[[list[str]], R],
        window_s: float,
        max_batch: int,
        name: str = "query-embed",
    ) -> None:
        self._encode_many = encode_many
        self.name = name
        self.window_s = max(0.0, window_s)
        self.max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._open: _Batch | None = None  # the batch new questions join
        self._encoding = threading.Lock()  # one batch through the model at a time; the next gathers meanwhile
        self.batches = 0  # batches embedded (for tests and benchmarks)
        self.largest = 0  # largest batch so far
        # runs the batches awaiting callers lead; made on first use
        self._runner: ThreadPoolExecutor | None = None

    @property
    def gathering(self) -> int:
        """Questions in the open batch, waiting to be embedded."""
        with self._cond:
            return len(self._open.texts) if self._open else 0

    def encode(self, text: str) -> np.ndarray:
        rows: Any = self.encode_many([text])
        vector: np.ndarray = rows[0]
        return vector

    def encode_many(self, texts: list[str]) -> R:
        """The rows of `texts` (one question's searches), embedded in the same batch as other callers' when they
        fit in it together."""
        batch, first, lead = self._join(texts)
        if lead:
            self._run(batch)
        else:
            batch.done.wait()
        return self._rows(batch, first, len(texts))

    async def aencode_many(self, texts: list[str]) -> R:
        """`encode_many` for an event loop: the same batches, awaited."""
        batch, first, lead = self._join(texts)
        loop = asyncio.get_running_loop()
        if lead:
            if self._runner is None:
                self._runner = ThreadPoolExecutor(1, thread_name_prefix=self.name)
            await loop.run_in_executor(self._runner, self._run, batch)
        else:
            waiter = loop.create_future()
            with self._cond:  # `_run` sets `done` and takes the waiters under the same lock
                pending = not batch.done.is_set()
                if pending:
                    batch.waiters.append((loop, waiter))
            if pending:
                await waiter
        return self._rows(batch, first, len(texts))

    def close(self) -> None:
        """Let the batcher's thread go (a later awaiting caller makes a new one)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.shutdown(wait=False)

    def _join(self, texts: list[str]) -> tuple[_Batch, int, bool]:
        """Add `texts` to the open batch (a new one when they do not fit): the batch, their first row, and whether
        this caller leads it."""
        with self._cond:
            batch = self._open
            if batch is not None and len(batch.texts) + len(texts) > self.max_batch:
                batch.closed = True  # too full for these rows: it goes now, they open the next batch
                self._open = batch = None
                self._cond.notify_all()
            lead = batch is None
            if batch is None:
                batch = self._open = _Batch()
            first = len(batch.texts)
            batch.texts.extend(texts)
            if len(batch.texts) >= self.max_batch:
                batch.closed = True
                self._open = None
                self._cond.notify_all()  # a full batch goes at once
        return batch, first, lead

    @staticmethod
    def _rows(batch: _Batch, first: int, count: int) -> R:
        if batch.error is not None:
            raise batch.error
        assert batch.vectors is not None
        rows: R = batch.vectors[first : first + count]
        return rows

    def _run(self, batch: _Batch) -> None:
        """The first caller of a batch: wait for the model and the window, close the batch, embed it."""
        with self._encoding:
            with self._cond:
                self._cond.wait_for(lambda: batch.closed, timeout=self.window_s)
                if not batch.closed:
                    batch.closed = True
                    if self._open is batch:
                        self._open = None
            try:
                batch.vectors = self._encode_many(list(batch.texts))
                self.batches += 1
                self.largest = max(self.largest, len(batch.texts))
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch sees it, raised there
                batch.error = exc
            finally:
                with self._cond:
                    batch.done.set()
                    waiters, batch.waiters = batch.waiters, []
                for loop, waiter in waiters:
                    loop.call_soon_threadsafe(_wake, waiter)
