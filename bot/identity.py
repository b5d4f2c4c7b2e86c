"""Who is asking, as principals, and who will read the answer, as an `Audience`: where the chat and API paths
decide which documents an answer may cite (docs/permissions.md).

An answer shown only to the asker (a DM, an ephemeral or private-first answer, `/sources`, an API call) may use
the asker's principals. An answer posted in a channel is read by everyone there: only documents visible to
everyone, plus those of the principals an admin maps to that channel (`RAG_CHANNEL_PRINCIPALS`). Each platform
resolves the asker with an `Identity`; no identity, or a failed lookup, means documents visible to everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from rag_core.permissions import USER_PREFIX, Audience, group
from rag_core.settings import Settings
from rag_core.types import Citation

if TYPE_CHECKING:
    from bot.conversation import Question

log = logging.getLogger(__name__)


class Identity(Protocol):
    """One platform's way of naming the asker."""

    async def principals(self, q: Question) -> frozenset[str] | None:
        """The asker's principals (`user:<email>`, `group:<name>`); None when the asker could not be identified."""


def groups_of(keys: Iterable[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    """`group:<name>` for every settings group listing one of `keys` (emails, platform user ids), any case."""
    wanted = {k.strip().lower() for k in keys if k}
    return {group(name) for name, members in groups.items() if wanted & {m.strip().lower() for m in members}}


def with_groups(principals: Iterable[str], user_id: str, settings: Settings) -> frozenset[str]:
    """The principals plus the settings groups (`RAG_PRINCIPAL_GROUPS`) the person's email or id is in."""
    found = set(principals)
    emails = [p[len(USER_PREFIX) :] for p in found if p.startswith(USER_PREFIX)]
    found |= groups_of([*emails, user_id], settings.principal_groups)
    return frozenset(found)


def channel_members(platform: str, channel_id: str) -> str:
    """`group:<platform>:<channel id>`: everyone in that conversation. What was said there (an answer saved from
    a private channel or a DM, bot/knowledge.py) may be shown there again."""
    return group(f"{platform}:{channel_id}")


def channel_audience(settings: Settings, channel_id: str, platform: str | None = None) -> Audience:
    """Everyone in a channel: documents visible to everyone, plus those of the principals mapped to it and, with
    the platform known, those of the channel's own members' group."""
    principals = set(settings.channel_principals.get(channel_id, ()))
    if platform:
        principals.add(channel_members(platform, channel_id))
    return Audience.of(principals)


async def asker_audience(identity: Identity | None, q: Question, settings: Settings) -> Audience:
    """The asker alone: their principals, or documents visible to everyone when they are unknown."""
    if identity is None:
        return Audience.public()
    try:
        principals = await identity.principals(q)
    except Exception:  # an identity lookup must never fail the answer: it only narrows it
        log.warning(
            "identifying the asker failed",
            exc_info=True,
            extra={"event": "identity_failed", "platform": q.platform},
        )
        principals = None
    if principals is None:
        return Audience.public()
    return Audience.of(with_groups(principals, q.user_id, settings))


def unreadable(citations: Iterable[Citation], audience: Audience) -> list[str]:
    """Titles of the cited documents `audience` may not read (citations carry their `readers`)."""
    return [c.title or c.doc_id for c in citations if not audience.may_read(c.readers)]
