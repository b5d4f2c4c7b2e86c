"""What the buttons under an answer do, for both chat adapters: vote, share a private answer, hand the question
to a person and close that hand-off, and (for admins) hide or unhide a document.

Each adapter turns a click into one of these calls and renders the result; the records live in the query log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum

from bot.conversation import Conversation
from bot.identity import channel_audience, unreadable
from rag_core.feedback import UnknownAnswer, metrics
from rag_core.feedback import workflow as wf
from rag_core.feedback.doc_votes import StoredDocSignals
from rag_core.permissions import EVERYONE
from rag_core.types import Answer, Citation, Vote

log = logging.getLogger(__name__)

NO_ESCALATION = (
    "No one is set up to help in this channel yet. An admin can add people with RAG_ESCALATION "
    "(channel id → user or group ids)."
)
UNKNOWN_ANSWER = "Sorry, I can no longer find that answer (it may be too old)."
NOT_ADMIN = "Only ragbot admins can hide or unhide documents."
NOT_TAGGED = "Only the people asked to help (or a ragbot admin) can mark this resolved."
NOT_SHAREABLE = (
    "I can't share this answer here: it cites {titles}, which not everyone in this channel may read. "
    "It stays visible to you only."
)

STALE_BUTTON = "Sorry, that button is out of date. Ask your question again to get a fresh answer."
ALREADY_SHARED = "This answer was shared in the thread already."
RESOLVED_BEFORE = "A person already helped with this and marked it resolved. Still stuck? Ask them again:"
HANDOFF_FAILED = "Sorry, I could not tag the people who help here. Please try again in a moment."


SHARE_CLAIM_TTL_S = 7 * 24 * 3600  # a private answer's Share button outlives its 30-minute response_url


class Resolve(Enum):
    RESOLVED = "resolved"
    NOT_ALLOWED = "not_allowed"
    NOT_OPEN = "not_open"


@dataclass(slots=True)
class Handoff:
    """An escalation just recorded: who to tag, and for which question."""

    answer_id: str
    question: str
    targets: list[str]
    new: bool  # False: the answer was escalated before (its people were tagged already)
    resolved: bool = False  # an earlier hand-off of this answer was resolved (offer to ask again)


def escalation_targets(conversation: Conversation, channel_id: str) -> list[str]:
    """The people or groups to tag for a channel: its own entry, else the "*" entry."""
    table = conversation.settings.escalation
    return list(table.get(channel_id) or table.get("*") or [])


class AnswerActions:
    """Button actions on logged answers; every method is async and runs the store in a worker thread."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    @property
    def _store(self):  # noqa: ANN202 - FeedbackStore, imported lazily by the conversation layer too
        store = self.conversation.feedback
        if store is None:
            raise UnknownAnswer("no query log in this process")
        return store

    async def logged_answer(self, answer_id: str) -> Answer | None:
        """The answer as it was logged (same id), to show it again when shared."""
        if self.conversation.feedback is None:
            return None
        record = await asyncio.to_thread(self._store.get_answer, answer_id)
        if record is None:
            return None
        citations = [
            Citation(
                c.n,
                c.title,
                c.url,
                c.snippet,
                c.score,
                c.source,
                c.doc_id,
                list(c.heading_path),
                list(c.readers) if c.readers else [EVERYONE],  # rows from before permissions: public only
            )
            for c in record.citations
        ]
        return Answer(
            question=record.question,
            text=record.answer_text,
            citations=citations,
            abstained=record.abstained,
            extractive=record.extractive,
            id=record.id,
        )

    async def shareable(
        self, answer_id: str, channel: str, platform: str | None = None
    ) -> tuple[Answer | None, str | None]:
        """A private answer about to be posted in `channel`: (the logged answer, None) when everyone there may
        read every document it cites, else (answer, the refusal saying why); (None, None) when it is unknown."""
        answer = await self.logged_answer(answer_id)
        if answer is None:
            return None, None
        audience = channel_audience(self.conversation.settings, channel, platform)
        hidden = unreadable(answer.citations, audience)
        if not hidden:
            return answer, None
        log.info(
            "sharing refused: the channel may not read a cited document",
            extra={
                "event": "share_refused",
                "answer_id": answer_id,
                "channel": channel,
                "documents": len(hidden),
            },
        )
        return answer, NOT_SHAREABLE.format(titles=", ".join(f"“{t}”" for t in dict.fromkeys(hidden)))

    async def claim_share(self, answer_id: str) -> bool:
        """True for the first Share of an answer (in the kv, so it holds across processes with Redis)."""
        kv = self.conversation.kv
        return await asyncio.to_thread(kv.set_if_absent, f"shared:{answer_id}", "1", SHARE_CLAIM_TTL_S)

    async def release_share(self, answer_id: str) -> None:
        """The public copy could not be posted: a later Share may try again."""
        await asyncio.to_thread(self.conversation.kv.delete, f"shared:{answer_id}")

    async def link(self, answer_id: str, *, platform: str, channel: str, message_id: str) -> None:
        """A shared answer's public message: reactions on it are votes on the same answer."""
        await asyncio.to_thread(
            self._store.link_message, answer_id, platform=platform, channel=channel, message_id=message_id
        )

    async def vote(self, *, platform: str, channel: str, answer_id: str, user: str, value: int) -> bool:
        """A 👍/👎 button: the same record as a reaction by the same person (one vote per person and answer)."""
        if value not in (1, -1) or self.conversation.feedback is None:
            return False
        vote = Vote(answer_id=answer_id, user=user, value=value, platform=platform, channel=channel)
        try:
            await asyncio.to_thread(self._store.record_vote, vote)
        except UnknownAnswer:
            return False
        try:
            metrics.observe_vote(platform, value)
        except Exception:  # metrics must never lose a vote
            log.warning("metrics observer failed", exc_info=True, extra={"event": "metrics_failed"})
        log.info(
            "vote recorded",
            extra={
                "event": "vote",
                "platform": platform,
                "answer_id": answer_id,
                "value": value,
                "via": "button",
            },
        )
        return True

    async def escalate(
        self, answer_id: str, *, platform: str, channel: str, user: str, again: bool = False
    ) -> Handoff | None:
        """Record a hand-off (`again`: reopen a resolved one); None when nobody is configured for the channel or
        the answer is unknown. The adapter posts the tag message, then calls `delivered` or `undelivered`."""
        targets = escalation_targets(self.conversation, channel)
        if not targets:
            log.info(
                "escalation without targets", extra={"event": "escalation_unconfigured", "channel": channel}
            )
            return None
        try:
            new = await asyncio.to_thread(
                wf.escalate,
                self._store,
                answer_id,
                platform=platform,
                channel=channel,
                targets=targets,
                user=user,
            )
        except UnknownAnswer:
            return None
        if not new and again:
            new = await asyncio.to_thread(wf.reopen_escalation, self._store, answer_id, user=user)
        record = await asyncio.to_thread(wf.get_escalation, self._store, answer_id)
        if record is None:  # withdrawn meanwhile (another click's tag message failed)
            return None
        log.info(
            "escalated to a person",
            extra={
                "event": "escalation",
                "platform": platform,
                "channel": channel,
                "answer_id": answer_id,
                "new": new,
            },
        )
        return Handoff(answer_id, record.question, record.targets, new, record.resolved_at is not None)

    async def set_escalation_message(self, answer_id: str, message_id: str) -> None:
        await asyncio.to_thread(wf.set_escalation_message, self._store, answer_id, message_id)

    async def undelivered(self, answer_id: str, error: str) -> None:
        """The tag message was refused: withdraw the record, so a later press tries again and no report counts
        a hand-off nobody received."""
        await asyncio.to_thread(wf.withdraw_escalation, self._store, answer_id)
        log.warning(
            "hand-off not delivered; withdrawn",
            extra={"event": "escalation_undelivered", "answer_id": answer_id, "error": error},
        )

    async def resolve(
        self, answer_id: str, *, user: str, roles: Sequence[str] = (), groups: Collection[str] = ()
    ) -> Resolve:
        """Close a hand-off: allowed for a tagged person (by id or through a tagged group) or an admin."""
        record = await asyncio.to_thread(wf.get_escalation, self._store, answer_id)
        if record is None or record.resolved_at is not None:
            return Resolve.NOT_OPEN
        tagged = user in record.targets or any(g in record.targets for g in groups)
        if not (tagged or self.conversation.is_admin(user, roles)):
            return Resolve.NOT_ALLOWED
        if not await asyncio.to_thread(wf.resolve_escalation, self._store, answer_id, user=user):
            return Resolve.NOT_OPEN
        log.info("escalation resolved", extra={"event": "escalation_resolved", "answer_id": answer_id})
        return Resolve.RESOLVED

    async def set_hidden(
        self, source: str, doc_id: str, *, hidden: bool, title: str, user: str, roles: Sequence[str] = ()
    ) -> str:
        """Hide or unhide a document (admins only); returns the line to show the admin."""
        if not self.conversation.is_admin(user, roles):
            return NOT_ADMIN
        if hidden:
            changed = await asyncio.to_thread(
                wf.hide_document, self._store, source, doc_id, title=title, user=user
            )
            line = (
                f"Hidden “{title}”: it will not be cited until unhidden."
                if changed
                else f"“{title}” was hidden already."
            )
        else:
            changed = await asyncio.to_thread(wf.unhide_document, self._store, source, doc_id)
            line = f"“{title}” can be cited again." if changed else f"“{title}” was not hidden."
        signals = getattr(self.conversation.engine, "doc_signals", None)
        if isinstance(signals, StoredDocSignals):
            signals.invalidate()  # takes effect with the next question, not after the refresh interval
        log.info(
            "document visibility changed",
            extra={
                "event": "document_hidden" if hidden else "document_unhidden",
                "source": source,
                "changed": changed,
            },
        )
        return line
