"""What happened to a question, as logged and counted: one of seven outcomes."""

from __future__ import annotations

from typing import Literal, get_args

from rag_core.types import Answer

# undelivered: an answer (or apology) was made but no route (post, plain text, ephemeral, DM) reached the asker.
# busy: refused because the process was answering as many questions as it may at once (answers_in_flight).
# cancelled: the asker left (client disconnect, message deleted) or the process stopped while it was answered.
Outcome = Literal["answered", "abstained", "error", "rate_limited", "undelivered", "busy", "cancelled"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


def outcome_of(answer: Answer, outcome: str | None = None) -> str:
    """The given outcome, checked, or the one the answer implies (abstained or answered)."""
    if outcome is None:
        return "abstained" if answer.abstained else "answered"
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    return outcome


def total_latency_ms(answer: Answer) -> float:
    """End-to-end latency: the engine's `total` timing when it gives one, else the sum of its stages."""
    timings = answer.timings_ms or {}
    if "total" in timings:
        return float(timings["total"])
    return float(sum(timings.values()))
