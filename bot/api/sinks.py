"""The HTTP `AnswerSink`: the conversation's events go into a queue a route reads as JSON or as a stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bot.conversation import Conversation, Question
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a question ended: an answer, or a refusal / failure with its HTTP status."""

    answer: Answer | None = None
    status: int = 200
    message: str = ""
    citations: list[Citation] = field(default_factory=list)


class QueueSink:
    """Implements `bot.conversation.AnswerSink` by queueing ("kind", payload) events."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._started = False

    async def started(self) -> None:
        self._started = True
        await self.events.put(("started", None))

    async def update(self, partial_text: str) -> None:
        await self.events.put(("update", partial_text))

    async def finished(self, answer: Answer) -> str | None:
        await self.events.put(("done", Outcome(answer=answer)))
        return answer.id  # the message id votes name: the answer id itself

    async def refused(self, message: str) -> None:
        # Before `started` only the limits refuse (rate limit, spend cap); after it, the engine rejected the
        # question (a UserError such as an unreachable index).
        await self.events.put(("done", Outcome(status=422 if self._started else 429, message=message)))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        await self.events.put(("done", Outcome(status=503, message=message, citations=list(citations))))


class AnswerStream:
    """One question being answered in the background; read `first()` then `deltas()`, or just `outcome()`.

    Reading ends only once the conversation has logged the answer, so a vote right after it finds it."""

    def __init__(self, conversation: Conversation, question: Question) -> None:
        self.sink = QueueSink()
        self.result: Outcome | None = None
        self._ended = False
        self._task = asyncio.create_task(self._run(conversation, question))

    async def _run(self, conversation: Conversation, question: Question) -> None:
        try:
            await conversation.ask(question, self.sink)
        finally:  # the layer always calls finished/refused/failed; this only guards against a bug there
            await self.sink.events.put(("end", None))

    async def _next(self) -> tuple[str, object]:
        kind, payload = await self.sink.events.get()
        if kind == "done":
            assert isinstance(payload, Outcome)
            self.result = self.result or payload
        elif kind == "end":
            self._ended = True
            if self.result is None:
                self.result = Outcome(status=500, message="the answer ended without a result")
        return kind, payload

    async def first(self) -> Outcome | None:
        """None once answering started (stream it), or the refusal that came instead."""
        while not self._ended:
            kind, _ = await self._next()
            if kind == "started":
                return None
        return self.result

    async def deltas(self) -> AsyncIterator[str]:
        """New text since the last event, until the answer is done and logged (then read `.result`)."""
        sent = ""
        while not self._ended:
            kind, payload = await self._next()
            if kind == "update" and isinstance(payload, str) and payload.startswith(sent):
                delta, sent = payload[len(sent) :], payload
                if delta:
                    yield delta
        answer = self.result.answer if self.result else None
        if answer is not None and answer.text.startswith(sent) and len(answer.text) > len(sent):
            yield answer.text[len(sent) :]  # the tail after the last throttled update

    def cancel(self) -> None:
        """Stop answering (the caller left): the LLM stream closes and the query log says `cancelled`."""
        if not self._task.done():
            self._task.cancel()

    async def outcome(self) -> Outcome:
        async for _ in self.deltas():
            pass
        assert self.result is not None
        return self.result


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


@contextlib.asynccontextmanager
async def cancelled_on_disconnect(receive: Receive, stream: AnswerStream) -> AsyncIterator[None]:
    """While inside, a client that disconnects cancels `stream`, and so does cancelling the request (shutdown).
    Read only after the request body was read."""

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not stream._task.done():
                    log.info("api client disconnected; answer cancelled", extra={"event": "api_disconnect"})
                    stream.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:  # the request itself was cancelled (shutdown): so is its answer
        stream.cancel()
        raise
    finally:
        watcher.cancel()
