"""Who is asking on Discord: Discord shares no email, so an admin maps user ids and role ids to principals
(`RAG_DISCORD_PRINCIPALS`: "<user id>" or "&<role id>" -> ["user:<email>", "group:<name>"])."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.settings import BotSettings

if TYPE_CHECKING:
    from bot.conversation import Question


class DiscordIdentity:
    """`bot.identity.Identity` for Discord: the principals mapped to the asker's id and to each of their roles."""

    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings

    async def principals(self, q: Question) -> frozenset[str] | None:
        keys = [q.user_id, *(f"&{role}" for role in q.role_ids)]
        return frozenset(p for key in keys for p in self.settings.discord_principals.get(key, ()))
