"""Fault-injection fixtures: a recording answer sink, and measured figures printed at the end of the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rag_core.types import Answer, Citation
from tests.rag_core.feedback.conftest import postgres_url  # noqa: F401 - a fresh PostgreSQL schema per test

FIGURES: list[tuple[str, str, float]] = []  # (fault, what was measured, seconds)


def figure(fault: str, what: str, seconds: float) -> None:
    """Record a measured time; all of them are printed in the terminal summary (docs/reliability.md copies them)."""
    FIGURES.append((fault, what, round(seconds, 3)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault figures (seconds)")
    for fault, what, seconds in FIGURES:
        terminalreporter.write_line(f"{fault:<22} {what:<58} {seconds:8.3f}")


@dataclass
class RecordingSink:
    """An AnswerSink that keeps what the asker would see, with the time each reply took."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    started_at: float = 0.0
    replied_after_s: float | None = None

    async def started(self) -> None:
        self.started_at = time.monotonic()
        self.events.append(("started", None))

    async def update(self, partial_text: str) -> None:
        self.events.append(("update", partial_text))

    async def finished(self, answer: Answer) -> str | None:
        self._replied()
        self.events.append(("finished", answer))
        return f"msg-{answer.id}"

    async def refused(self, message: str) -> None:
        self._replied()
        self.events.append(("refused", message))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        self._replied()
        self.events.append(("failed", message))

    def _replied(self) -> None:
        if self.started_at:
            self.replied_after_s = time.monotonic() - self.started_at

    @property
    def reply(self) -> tuple[str, Any]:
        """The one final event the asker sees."""
        finals = [e for e in self.events if e[0] in ("finished", "refused", "failed")]
        assert len(finals) == 1, self.events
        return finals[0]


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    yield RecordingSink()
