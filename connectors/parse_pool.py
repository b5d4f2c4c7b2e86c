"""File parsing in worker processes, overlapping with the sync's embedding: readers hand over `Deferred` work.

A reader reads a file's bytes (zip members included: handles stay in this process) and yields a `Deferred`: a
module-level `work(*args)` that parses them (picklable, run in a worker) and a `finish` run here, in order, that
turns the result, or the `ExtractError` it raised, into documents and skipped records. `resolve` keeps at most a
few files in flight, so memory stays bounded while the sync embeds the previous ones. A worker that dies (a parser
crashing the interpreter) skips its file with a reason; the rest of the sync goes on in a fresh pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import ExtractError, Skipped
from rag_core.types import Document

log = logging.getLogger(__name__)

Item = Document | Skipped
# Files parsed ahead of the writer per worker: enough to keep the workers busy, few enough to bound memory.
_AHEAD_PER_WORKER = 4
_WATCH_S = 1.0  # how often a worker checks that its sync process is alive


@dataclass(slots=True)
class Deferred:
    """One file's parsing: `work(*args)` (module-level, picklable) in a worker, then `finish(result)` here."""

    path: str  # the file, for the reason when its worker crashes
    work: Callable[..., Any]
    args: tuple[Any, ...]
    finish: Callable[[Any], Iterable[Item]]  # gets work's result, or the ExtractError it raised

    def run_here(self) -> Iterable[Item]:
        try:
            result = self.work(*self.args)
        except ExtractError as exc:
            return self.finish(exc)
        return self.finish(result)


def workers_for(setting: int) -> int:
    """Worker processes to use: the setting, capped at the CPU count; 0 or 1 parse in the sync's own process."""
    workers = min(setting, os.cpu_count() or 1)
    return workers if workers >= 2 else 0


def resolve(items: Iterable[Item | Deferred], workers: int) -> Iterator[Item]:
    """The readers' items in their order, deferred parsing done in `workers` processes (or here when 0)."""
    if workers < 2:
        for item in items:
            yield from item.run_here() if isinstance(item, Deferred) else (item,)
        return
    pool = _Pool(workers)
    try:
        yield from pool.resolve(iter(items))
    finally:
        pool.close()


@dataclass(slots=True)
class _Slot:
    item: Item | Deferred
    future: Future[Any] | None = None
    alone: bool = False  # submitted while no other file was in flight: a crash is this file's


@dataclass
class _Pool:
    workers: int
    executor: ProcessPoolExecutor | None = None
    suspects: int = 0  # files in flight when a worker died: each is rerun alone to find the one that crashed
    pending: deque[_Slot] = field(default_factory=deque)

    def resolve(self, items: Iterator[Item | Deferred]) -> Iterator[Item]:
        exhausted = False
        while True:
            while not exhausted and len(self.pending) < self.workers * _AHEAD_PER_WORKER:
                try:
                    self.pending.append(_Slot(next(items)))
                except StopIteration:
                    exhausted = True
            if not self.pending:
                return
            self._submit(1 if self.suspects else len(self.pending))
            slot = self.pending.popleft()
            if self.suspects:
                self.suspects -= 1
            if not isinstance(slot.item, Deferred):
                yield slot.item
                continue
            yield from slot.item.finish(self._result(slot))

    def _submit(self, limit: int) -> None:
        for slot in list(self.pending)[:limit]:
            if slot.future is None and isinstance(slot.item, Deferred):
                if self.executor is None:
                    self.executor = _new_executor(self.workers)
                slot.alone = self.suspects > 0
                slot.future = self.executor.submit(slot.item.work, *slot.item.args)

    def _result(self, slot: _Slot) -> Any:
        assert isinstance(slot.item, Deferred) and slot.future is not None
        while True:
            try:
                return slot.future.result()
            except ExtractError as exc:
                return exc
            except BrokenProcessPool:
                self._drop_executor()
                if slot.alone:
                    log.warning(
                        "a parser process crashed", extra={"event": "parse_crash", "path": slot.item.path}
                    )
                    return ExtractError("the parser crashed on this file (its worker process died)")
                # Which file killed it is unknown: rerun this one and the others in flight one at a time.
                for other in self.pending:
                    other.future = None
                self.suspects = len(self.pending)
                slot.alone = True
                self.executor = _new_executor(self.workers)
                slot.future = self.executor.submit(slot.item.work, *slot.item.args)

    def _drop_executor(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None

    def close(self) -> None:
        """Stop the workers now (also on Ctrl-C or an error in the writer): queued parsing is not wanted."""
        executor, self.executor = self.executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a worker deep in a huge PDF would otherwise finish it first
            if process.is_alive():
                process.terminate()


def _new_executor(workers: int) -> ProcessPoolExecutor:
    # forkserver, not fork: a forked worker would inherit the sync's open files, the embedded store's lock
    # among them, and copy any lock another thread holds at that moment.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


def _init_worker(sync_pid: int) -> None:
    """Ignore Ctrl-C (it reaches the whole process group; the sync process stops its workers), and exit when the
    sync process is gone: killed hard, it cannot stop them, and a worker waiting for work would wait forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(sync_pid,), name="parse-worker-watchdog", daemon=True).start()


def _exit_with(pid: int) -> None:
    while True:
        time.sleep(_WATCH_S)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # alive, another user's: never ours, but do not take it for dead
            pass
