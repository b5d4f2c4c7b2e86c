"""The knowledge loop for every front end: save, edit and remove curated answers, then sync them at once.

Chat adapters (Slack, Discord), the HTTP API and the terminal call these; the rows live in the query log
(rag_core/feedback/curated.py) and `connectors.curated.sync_curated` puts them in the index. Who may do what:
a saved answer can be edited or removed by the person who saved it or by an admin; "Save as answer" on any
message is for admins; the resolver of a hand-off may save its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.identity import channel_members
from rag_core.feedback import curated as cur

if TYPE_CHECKING:
    from bot.conversation import Conversation
    from rag_core.feedback import FeedbackStore
    from rag_core.settings import Settings

log = logging.getLogger(__name__)

OFFER = "Save this answer for next time? The next person who asks gets it, cited."
NOT_ALLOWED = "Only the person who saved this answer, or a ragbot admin, can change it."
ADMINS_ONLY = "Only ragbot admins can save any message as an answer."
GONE = "That saved answer no longer exists."
NO_LOG = "Saving answers needs the query log, which this process does not have."


def channel_group(platform: str, channel_id: str) -> str:
    """The principal that stands for a private channel's members: `group:<platform>:<channel id>`.

    An answer saved from a private channel or a DM is visible only to it (and to the operator at the terminal)."""
    return channel_members(platform, channel_id)


def readers_for(platform: str, channel_id: str, private: bool) -> list[str] | None:
    """Who may read an answer saved in this channel: everyone, or only that private channel's members."""
    return [channel_group(platform, channel_id)] if private else None


@dataclass(slots=True)
class Saved:
    """The outcome of a save, edit or removal, with the line to show the person."""

    answer: cur.CuratedAnswer | None
    message: str
    indexed: bool


class Knowledge:
    """Curated answers for one process: the query log, and the conversation whose index they are synced into."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    @property
    def store(self) -> FeedbackStore:
        if self.conversation.feedback is None:
            raise cur.CuratedError(NO_LOG)
        return self.conversation.feedback

    def can_change(self, saved: cur.CuratedAnswer, user: str, roles: Sequence[str] = ()) -> bool:
        return self.conversation.is_admin(user, roles) or cur.is_author(self.store, saved, user)

    async def may_save_handoff(self, logged_answer_id: str, user: str, roles: Sequence[str] = ()) -> bool:
        """The person who resolved this hand-off (or an admin) may save its answer."""
        if self.conversation.is_admin(user, roles):
            return True
        return await asyncio.to_thread(self._resolved_by, logged_answer_id, user)

    def _resolved_by(self, logged_answer_id: str, user: str) -> bool:
        from sqlalchemy.orm import Session

        from rag_core.feedback.models import EscalationRecord

        with Session(self.store.engine) as session:
            record = session.get(EscalationRecord, logged_answer_id)
            return record is not None and record.resolved_by == self.store.hash_user(user)

    # --- reads ---------------------------------------------------------------------------------------------------

    async def get(self, answer_id: str) -> cur.CuratedAnswer | None:
        return await asyncio.to_thread(cur.get_answer, self.store, answer_id)

    async def draft(self, logged_answer_id: str) -> tuple[str, list[dict[str, str]]]:
        """The question a hand-off was about and the pages its bot answer cited (with their indexed versions)."""
        record = await asyncio.to_thread(self.store.get_answer, logged_answer_id)
        if record is None:
            return "", []
        return record.question, await asyncio.to_thread(
            self._cited, [(c.source, c.doc_id) for c in record.citations]
        )

    def _cited(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
        writer = self._writer()
        out = []
        versions: dict[str, dict[str, str]] = {}
        for source, doc_id in keys:
            if writer is not None and source not in versions:
                try:
                    versions[source] = writer.document_versions(source)
                except Exception:  # the index is unreachable: the answer is saved, unflagged
                    log.warning("reading document versions failed", exc_info=True)
                    versions[source] = {}
            version = versions.get(source, {}).get(doc_id, "")
            out.append({"source": source, "doc_id": doc_id, "version": version})
        return out

    # --- writes --------------------------------------------------------------------------------------------------

    async def save(
        self,
        question: str,
        answer: str,
        *,
        author: str,
        author_id: str | None,
        platform: str,
        channel: str = "",
        channel_name: str = "",
        thread_url: str = "",
        readers: Iterable[str] | None = None,
        source_answer_id: str | None = None,
        cited: Sequence[dict[str, str]] = (),
    ) -> Saved:
        """Store a new answer and sync the curated source now. Raises `CuratedError` for bad input."""
        saved = await asyncio.to_thread(
            cur.add_answer,
            self.store,
            question,
            answer,
            author=author,
            author_id=author_id,
            platform=platform,
            channel=channel,
            channel_name=channel_name,
            thread_url=thread_url,
            readers=readers,
            source_answer_id=source_answer_id,
            cited=cited,
        )
        log.info(
            "curated answer saved",
            extra={
                "event": "curated_saved",
                "id": saved.id,
                "platform": platform,
                "restricted": bool(readers),
            },
        )
        indexed = await self.sync()
        return Saved(saved, _said("Saved", indexed), indexed)

    async def edit(
        self, answer_id: str, *, user: str, roles: Sequence[str] = (), question: str, answer: str
    ) -> Saved:
        saved = await self.get(answer_id)
        if saved is None:
            return Saved(None, GONE, False)
        if not self.can_change(saved, user, roles):
            return Saved(saved, NOT_ALLOWED, False)
        changed = await asyncio.to_thread(
            cur.update_answer, self.store, answer_id, question=question, answer=answer
        )
        log.info("curated answer edited", extra={"event": "curated_edited", "id": answer_id})
        indexed = await self.sync()
        return Saved(changed, _said("Updated", indexed), indexed)

    async def remove(self, answer_id: str, *, user: str, roles: Sequence[str] = ()) -> Saved:
        saved = await self.get(answer_id)
        if saved is None:
            return Saved(None, GONE, False)
        if not self.can_change(saved, user, roles):
            return Saved(saved, NOT_ALLOWED, False)
        await asyncio.to_thread(cur.remove_answer, self.store, answer_id)
        log.info("curated answer removed", extra={"event": "curated_removed", "id": answer_id})
        indexed = await self.sync()
        return Saved(
            None, "Removed: it will not be cited any more." if indexed else _said("Removed", False), indexed
        )

    async def sync(self) -> bool:
        """Sync the curated source into this process's index now; False (logged) when it could not be."""
        writer = self._writer()
        if writer is None:
            return False
        from connectors.curated import sync_curated

        try:
            report = await asyncio.to_thread(
                sync_curated, self.store, self.conversation.settings, writer, self.conversation.kv
            )
        except Exception:
            log.exception("syncing curated answers failed", extra={"event": "curated_sync_failed"})
            return False
        return report.ok

    def _writer(self):  # noqa: ANN202 - an IndexWriter, or None for an engine double without one
        index_writer = getattr(self.conversation.engine, "index_writer", None)
        return index_writer() if callable(index_writer) else None


def _said(what: str, indexed: bool) -> str:
    if indexed:
        return f"{what}: from now on it is cited when someone asks this."
    return f"{what}. It will be cited after the next sync of the answers source (syncing now did not work)."


def report_args(settings: Settings, engine: Any | None = None) -> dict[str, Any]:
    """What the report's knowledge section needs (`collect(..., knowledge=)`): the curated source's name, the age
    setting, and, from an engine when there is one (else loaded on first use), question embeddings for grouping and
    the index's document versions for "cited pages changed"."""
    from rag_core.settings import curated_source

    args: dict[str, Any] = {
        "source": curated_source(settings).name,
        "max_age_days": settings.knowledge_max_age_days,
    }
    if engine is not None:
        embedder = getattr(engine, "embedder", None)
        if embedder is not None:
            args["embed"] = embedder.encode_passages
        writer = getattr(engine, "index_writer", None)
        if callable(writer):
            try:
                index = writer()
                sources = [s.name for s in settings.sources] or [args["source"]]
                args["versions"] = {name: index.document_versions(name) for name in sources}
            except Exception:  # the index is unreachable: the report says pages were not compared
                log.warning("reading document versions for the report failed", exc_info=True)
        return args
    holder: list[Any] = []

    def embed(texts: Sequence[str]) -> Any:
        if not holder:
            from rag_core.embedding import Embedder

            holder.append(Embedder(settings))
        return holder[0].encode_passages(texts)

    args["embed"] = embed
    return args
