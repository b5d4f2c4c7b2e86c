"""Which Slack message subtypes are a person asking something, and the note for a question with a file attached.

A plain message has no subtype. `file_share` is a message with files (a screenshot with a question),
`thread_broadcast` a thread reply also sent to the channel, `me_message` a `/me` line: each is a person writing.
Every other subtype (edits, deletions, joins, topic changes, bot messages, file comments...) is not a question.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.conversation import AnswerSink
from rag_core.types import Answer, Citation

QUESTION_SUBTYPES = frozenset({"file_share", "thread_broadcast", "me_message"})
ATTACHMENT_NOT_READ = "(I answered from your message's text; I can't read attached files.)"
FILE_ONLY = (
    "I can't read attached files yet. Please type your question as text, e.g. “how do I request time off?”."
)


def is_person_message(event: dict[str, Any]) -> bool:
    """A message a person wrote (plain, with files, broadcast from a thread, /me), not a system event."""
    subtype = event.get("subtype")
    return subtype is None or subtype in QUESTION_SUBTYPES


def has_files(event: dict[str, Any]) -> bool:
    return bool(event.get("files")) or event.get("subtype") == "file_share"


class AttachmentNoteSink:
    """Wraps a sink for a question sent with files: the answer says the attachment was not read."""

    def __init__(self, inner: AnswerSink) -> None:
        self.inner = inner

    async def started(self) -> None:
        await self.inner.started()

    async def update(self, partial_text: str) -> None:
        await self.inner.update(partial_text)

    async def finished(self, answer: Answer) -> str | None:
        noted = dataclasses.replace(answer, text=f"{answer.text}\n\n_{ATTACHMENT_NOT_READ}_")
        return await self.inner.finished(noted)

    async def refused(self, message: str) -> None:
        await self.inner.refused(message)

    async def failed(self, message: str, citations: list[Citation]) -> None:
        await self.inner.failed(message, citations)
