"""Who is asking on Slack: the asker's email from `users.info` (scope `users:read.email`) and, when enabled,
the Slack user groups they are in (`usergroups.list`, scope `usergroups:read`), both kept for a TTL.

A failed `users.info` (an error, no email on the profile, a timeout) means the asker is unknown: documents visible
to everyone only; a failed `usergroups.list` means no Slack user groups. Each is logged once per person (or list)
per TTL, without tokens, and tried again with the next question.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import BotSettings
from bot.slack.delivery import CALL_ERRORS, describe
from rag_core.permissions import group, user

if TYPE_CHECKING:
    from bot.conversation import Question

log = logging.getLogger(__name__)


class SlackIdentity:
    """`bot.identity.Identity` for Slack: `user:<email>` plus `group:<handle>` of the asker's Slack user groups."""

    def __init__(self, client: AsyncWebClient, settings: BotSettings) -> None:
        self.client = client
        self.ttl_s = settings.slack_identity_ttl_s
        self.timeout_s = settings.slack_identity_timeout_s
        self.usergroups = settings.slack_usergroups
        self._emails: dict[str, tuple[float, str]] = {}  # user id -> (expires at, email)
        self._groups: tuple[float, dict[str, set[str]]] | None = None  # (expires at, user id -> handles)
        self._logged: dict[str, float] = {}  # what failed -> when it was last logged

    async def principals(self, q: Question) -> frozenset[str] | None:
        email = await self.email(q.user_id)
        if email is None:
            return None
        found = {user(email)}
        if self.usergroups:
            found |= {group(handle) for handle in (await self._user_groups()).get(q.user_id, ())}
        return frozenset(found)

    async def email(self, user_id: str) -> str | None:
        """The person's email, from the cache or `users.info`; None (logged) when Slack does not say."""
        now = time.monotonic()
        cached = self._emails.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if not user_id:
            return None
        try:
            resp = await asyncio.wait_for(self.client.users_info(user=user_id), self.timeout_s)
        except CALL_ERRORS as exc:  # TimeoutError included
            self._failed(f"users.info:{user_id}", describe(exc), user_id)
            return None
        profile = (resp.get("user") or {}).get("profile") or {}
        email = str(profile.get("email") or "").strip()
        if not email:
            self._failed(f"users.info:{user_id}", "no email on the profile (users:read.email?)", user_id)
            return None
        self._emails[user_id] = (now + self.ttl_s, email)
        return email

    async def _user_groups(self) -> dict[str, set[str]]:
        """User id -> handles of the user groups they are in, for the whole workspace, kept for the TTL."""
        now = time.monotonic()
        if self._groups is not None and self._groups[0] > now:
            return self._groups[1]
        try:
            resp = await asyncio.wait_for(self.client.usergroups_list(include_users=True), self.timeout_s)
        except CALL_ERRORS as exc:  # TimeoutError included
            self._failed("usergroups.list", describe(exc))
            return {}  # no groups rather than stale ones: someone removed from a group must not keep it
        members: dict[str, set[str]] = {}
        for usergroup in resp.get("usergroups") or []:
            handle = usergroup.get("handle") or usergroup.get("name")
            if not handle or usergroup.get("date_delete"):
                continue
            for member in usergroup.get("users") or []:
                members.setdefault(member, set()).add(handle)
        self._groups = (now + self.ttl_s, members)
        return members

    def _failed(self, what: str, error: str, user_id: str | None = None) -> None:
        """One warning per failing lookup per TTL (a Slack outage must not flood the log)."""
        now = time.monotonic()
        if self._logged.get(what, float("-inf")) + self.ttl_s > now:
            return
        self._logged[what] = now
        log.warning(
            "slack identity lookup failed",
            extra={
                "event": "slack_identity_failed",
                "lookup": what.split(":", 1)[0],
                "user": user_id,
                "error": error,
            },
        )
