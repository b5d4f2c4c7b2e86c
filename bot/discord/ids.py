"""Which channel and roles a Discord event stands for, as the conversation layer names them."""

from __future__ import annotations

from typing import Any

import discord


def access_channel_id(channel: Any) -> str:
    """The channel whose access rules apply: a thread answers with its parent channel's sources."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return str(channel.parent_id)
    return str(channel.id)


def role_names(user: discord.abc.User) -> list[str]:
    return [role.name for role in getattr(user, "roles", [])]


def role_ids(user: discord.abc.User) -> list[str]:
    """The member's role ids (a DM's author has none): keys of `RAG_DISCORD_PRINCIPALS` as "&<id>"."""
    return [str(role.id) for role in getattr(user, "roles", [])]
