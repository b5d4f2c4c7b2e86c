"""Engine doubles for the cases the real engine cannot show on demand: it fails, or it is slow.

Both delegate everything else to the real engine.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rag_core.engine import Engine
from rag_core.types import Answer, Citation


class FailingEngine:
    """The engine breaks while answering; looking up sources still works."""

    def __init__(self, real: Engine) -> None:
        self.real = real

    def answer(self, question: str, **kwargs: Any) -> Answer:
        raise RuntimeError("vector store exploded")

    def sources(self, question: str, **kwargs: Any) -> list[Citation]:
        return self.real.sources(question, **kwargs)


class SlowEngine:
    """Waits until `release` is set, then streams the real answer in a few pieces, pausing between them."""

    def __init__(self, real: Engine, pieces: int = 4, pause_s: float = 0.2) -> None:
        self.real = real
        self.release = threading.Event()
        self.entered = threading.Event()
        self.pieces = pieces
        self.pause_s = pause_s
        self.calls: list[dict[str, Any]] = []

    def answer(self, question: str, *, on_token=None, **kwargs: Any) -> Answer:
        self.calls.append({"question": question, **kwargs})
        self.entered.set()
        if not self.release.wait(30):
            raise TimeoutError("the test never released the slow engine")
        answer = self.real.answer(question, **kwargs)
        if on_token:
            step = max(1, len(answer.text) // self.pieces)
            for start in range(0, len(answer.text), step):
                on_token(answer.text[start : start + step])
                time.sleep(self.pause_s)
        return answer

    def sources(self, question: str, **kwargs: Any) -> list[Citation]:
        return self.real.sources(question, **kwargs)


class RecordingEngine:
    """The real engine, remembering what each answer() call was given (to check thread history)."""

    def __init__(self, real: Engine) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def answer(self, question: str, **kwargs: Any) -> Answer:
        self.calls.append({"question": question, **kwargs})
        return self.real.answer(question, **kwargs)

    def sources(self, question: str, **kwargs: Any) -> list[Citation]:
        return self.real.sources(question, **kwargs)
