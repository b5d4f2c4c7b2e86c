"""An answer cancelled part-way (its asker left, its message was deleted, the process is stopping).

`AnswerCancelled` is an `asyncio.CancelledError`, so the cancellation still propagates, carrying the partial answer:
what was streamed so far and the tokens already spent, for the query log's `cancelled` row."""

from __future__ import annotations

import asyncio

from rag_core.types import Answer


class AnswerCancelled(asyncio.CancelledError):
    """Raised by `Engine.answer_async` when cancelled during generation; `.answer` holds what was spent."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("answer cancelled")
        self.answer = answer
