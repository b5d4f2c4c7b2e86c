"""Follow-up rewriting: a thread's history and its follow-up condensed into one standalone search question."""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.types import Turn

REWRITE_PROMPT = """Rewrite the user's last message as one standalone question that can be understood without \
the conversation, for searching a team's documents. Keep every name, number and term the conversation gives it. \
Reply with the question only."""

REWRITE_TOKENS = 80  # output cap of the rewrite


def is_follow_up(history: Sequence[Turn]) -> bool:
    """A question asked in a thread that already holds an earlier question."""
    return any(t.role == "user" for t in history)


def history_prefixed(question: str, history: Sequence[Turn]) -> str:
    """Without an LLM, a follow-up ("and for contractors?") is searched together with the previous question."""
    previous = [t.text for t in history if t.role == "user"][-1:]
    return " ".join([*previous, question])


def rewrite_messages(question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
    thread = "\n".join(f"{t.role}: {t.text}" for t in history)
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{thread}\n\nLast message: {question}"},
    ]


def searched_follow_up(reply: str | None, question: str, history: Sequence[Turn]) -> str:
    """The LLM's rewrite of a follow-up, or the history-prefixed question when there is none."""
    if reply:
        return reply.splitlines()[0].strip().strip('"')
    return history_prefixed(question, history)
