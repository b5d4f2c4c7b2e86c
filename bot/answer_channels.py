"""Answer channels: every new top-level question in a configured channel is answered without a mention.

A cheap filter decides what counts as a question; `QuietSink` keeps the channel free of noise: nothing is shown
while the answer is worked out, and an "I don't know" or a refusal is logged, never posted.
"""

from __future__ import annotations

import logging
import re

from bot.conversation import AnswerSink
from rag_core.settings import Settings
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)

_WORD = re.compile(r"[\w'’-]+")


def is_answer_channel(channel_id: str, settings: Settings) -> bool:
    return channel_id in settings.auto_answer_channels


def looks_like_question(text: str, settings: Settings) -> bool:
    """Ends with "?", starts with a question word, or is at least `auto_answer_min_words` words long."""
    text = text.strip()
    if not text:
        return False
    if text.rstrip(" .!)*_~`").endswith("?"):
        return True
    words = _WORD.findall(text.lower())
    if not words:
        return False
    starters = {w.lower() for w in settings.auto_answer_question_words}
    return words[0] in starters or len(words) >= settings.auto_answer_min_words


def private_first(channel_id: str, settings: Settings) -> bool:
    """Whether answers in this channel go to the asker privately first (the channel's setting wins)."""
    return settings.private_first_channels.get(channel_id, settings.private_first)


class QuietSink:
    """Wraps a sink for unasked-for answers: no "Searching…" or streamed drafts, and only an answer with a source
    above the threshold is posted. Abstentions and refusals are logged (the conversation records the outcome)."""

    def __init__(self, inner: AnswerSink, channel_id: str) -> None:
        self.inner = inner
        self.channel_id = channel_id
        self.posted = False

    async def started(self) -> None:
        pass

    async def update(self, partial_text: str) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        if answer.abstained:
            log.info(
                "answer channel: abstained, nothing posted",
                extra={"event": "auto_answer_abstained", "channel": self.channel_id, "answer_id": answer.id},
            )
            return None
        self.posted = True
        return await self.inner.finished(answer)

    async def refused(self, message: str) -> None:
        log.info(
            "answer channel: refused, nothing posted",
            extra={"event": "auto_answer_refused", "channel": self.channel_id},
        )

    async def failed(self, message: str, citations: list[Citation]) -> None:
        log.info(
            "answer channel: failed, nothing posted",
            extra={"event": "auto_answer_failed", "channel": self.channel_id},
        )
