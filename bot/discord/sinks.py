"""Answer sinks for Discord: how the conversation layer's events look in a channel reply or a slash command.

A channel answer is a reply to the question (in its thread when it has one) edited as the answer streams; an
answer longer than one message continues in further messages, with the sources embed on the last one.
A slash-command answer is the deferred ephemeral response, continued in ephemeral follow-ups.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

import discord
from discord.context_managers import Typing

from bot.delivery import try_routes
from bot.discord.render import answer_embed, source_line, sources_embed, split_message
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)

NO_TEXT = "(no answer text)"


def _embed_key(embed: discord.Embed | None) -> dict[str, Any] | None:
    if embed is None:
        return None
    return dict(embed.to_dict())


def answer_parts(answer: Answer) -> tuple[list[str], discord.Embed | None]:
    """The messages an answer takes and the embed that goes on the last one."""
    return split_message(answer.text) or [NO_TEXT], answer_embed(answer)


def plain_parts(text: str, citations: Sequence[Citation], heading: str = "Sources") -> list[str]:
    """The reply as plain messages, sources listed as text: for channels where embeds are refused, and DMs."""
    lines = [text]
    if citations:
        lines += ["", f"**{heading}**", *(source_line(c) for c in citations)]
    return split_message("\n".join(lines)) or [NO_TEXT]


UNKNOWN_MESSAGE = 10008
INVALID_FORM_BODY = 50035  # what Discord answers a reply to a deleted message (message_reference: unknown)


def _question_gone(exc: discord.HTTPException) -> bool:
    return isinstance(exc, discord.NotFound) or exc.code in (UNKNOWN_MESSAGE, INVALID_FORM_BODY)


def _describe(exc: discord.HTTPException) -> str:
    return f"HTTP {exc.status} (code {exc.code})"


async def deliver(
    routes: Sequence[tuple[str, Callable[[], Awaitable[None]]]], *, channel: str | None = None
) -> None:
    """Try each (name, route) in order until one works (see bot.delivery); Undelivered when none did."""
    await try_routes(
        "discord",
        routes,
        failures=(discord.HTTPException,),
        describe=lambda exc: _describe(exc) if isinstance(exc, discord.HTTPException) else type(exc).__name__,
        channel=channel,
    )


class ChannelReplySink:
    """Answers an @mention or a DM: typing, then one reply (plus continuation messages) edited in place."""

    def __init__(self, question: discord.Message) -> None:
        self.question = question
        # A message that started a thread is answered inside that thread, where the conversation continues.
        started_thread = getattr(question, "thread", None)
        self.channel: discord.abc.Messageable = started_thread or question.channel
        self._reply_to = None if started_thread else question
        self.messages: list[discord.Message] = []
        self._shown: list[tuple[str, dict | None]] = []
        self._typing: Typing | None = None

    @property
    def message_ids(self) -> list[str]:
        return [str(m.id) for m in self.messages]

    async def started(self) -> None:
        # Discord shows typing for ~10 s per trigger; discord.py's context manager renews it every 5 s
        # until the first part of the answer is posted (retrieval plus a slow LLM can take longer than 10 s).
        typing = self.channel.typing()
        try:
            await typing.__aenter__()
        except discord.HTTPException:  # typing is a nicety; never let it stop an answer
            log.debug("typing indicator failed", exc_info=True)
            return
        self._typing = typing

    async def stop_typing(self) -> None:
        typing, self._typing = self._typing, None
        if typing is not None:
            await typing.__aexit__(None, None, None)

    async def update(self, partial_text: str) -> None:
        await self._show(split_message(partial_text))

    async def finished(self, answer: Answer) -> str | None:
        parts, embed = answer_parts(answer)
        await self._deliver(parts, embed, plain_parts(answer.text, answer.citations))
        return self.message_ids[0] if self.messages else None

    async def refused(self, message: str) -> None:
        await self._deliver(split_message(message), None, split_message(message))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        embed = sources_embed(citations) if citations else None
        await self._deliver(split_message(message), embed, plain_parts(message, citations))

    async def _deliver(self, parts: Sequence[str], embed: discord.Embed | None, plain: Sequence[str]) -> None:
        """The reply (edited in place), else a fresh plain reply, else a DM to the asker; typing always stops."""
        try:
            await deliver(
                [
                    ("reply", lambda: self._show(parts, embed)),
                    ("plain_reply", lambda: self._post_plain(plain)),
                    ("direct_message", lambda: self._direct_message(plain)),
                ],
                channel=str(getattr(self.channel, "id", "")),
            )
        finally:
            await self.stop_typing()

    async def _post_plain(self, parts: Sequence[str]) -> None:
        posted = [await self._send(part, None, first=i == 0) for i, part in enumerate(parts)]
        self.messages, self._shown = posted, [(part, None) for part in parts]

    async def _direct_message(self, parts: Sequence[str]) -> None:
        for part in parts:
            await self.question.author.send(part)
        self.messages, self._shown = [], []  # nothing in the channel to vote on

    async def _show(self, parts: Sequence[str], embed: discord.Embed | None = None) -> None:
        """Make the posted messages read `parts`, editing only those that changed."""
        await self.stop_typing()
        for i, part in enumerate(parts):
            part_embed = embed if i == len(parts) - 1 else None
            wanted = (part, _embed_key(part_embed))
            if i < len(self.messages):
                if self._shown[i] == wanted:
                    continue
                try:
                    self.messages[i] = await self.messages[i].edit(content=part, embed=part_embed)
                except discord.NotFound:  # someone deleted our reply mid-answer: post it again
                    self.messages[i] = await self._send(part, part_embed, first=i == 0)
                self._shown[i] = wanted
            else:
                self.messages.append(await self._send(part, part_embed, first=i == 0))
                self._shown.append(wanted)
        # The final text can take fewer messages than a streamed draft did.
        for extra in self.messages[len(parts) :]:
            with suppress(discord.NotFound):
                await extra.delete()
        del self.messages[len(parts) :]
        del self._shown[len(parts) :]

    async def _send(self, content: str, embed: discord.Embed | None, *, first: bool) -> discord.Message:
        extra: dict[str, Any] = {"embed": embed} if embed is not None else {}  # discord.py: omitted, not None
        if first and self._reply_to is not None:
            try:
                return await self._reply_to.reply(content, mention_author=False, **extra)
            except discord.HTTPException as exc:
                if not _question_gone(exc):
                    raise
                # The question was deleted: stop replying to it (each streamed edit would try again and fail)
                # and answer in the channel once, without the reference.
                log.info(
                    "question deleted; answering without a reply",
                    extra={"event": "discord_question_gone", "error": _describe(exc)},
                )
                self._reply_to = None
        return await self.channel.send(content, **extra)


class InteractionSink:
    """Answers `/ask`: the deferred ephemeral response, edited as the answer streams, then ephemeral follow-ups."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction

    async def started(self) -> None:
        if not self.interaction.response.is_done():
            await self.interaction.response.defer(ephemeral=True, thinking=True)

    async def update(self, partial_text: str) -> None:
        parts = split_message(partial_text)
        if parts:
            await self.interaction.edit_original_response(content=parts[0])

    async def finished(self, answer: Answer) -> str | None:
        parts, embed = answer_parts(answer)
        await self._show(parts, embed, plain_parts(answer.text, answer.citations))
        return None  # ephemeral messages cannot carry reactions, so there is nothing to vote on

    async def refused(self, message: str) -> None:
        await self._show(split_message(message), None, split_message(message))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        embed = sources_embed(citations) if citations else None
        await self._show(split_message(message), embed, plain_parts(message, citations))

    async def _show(self, parts: Sequence[str], embed: discord.Embed | None, plain: Sequence[str]) -> None:
        """The ephemeral response, else the same as plain text, else a DM to the asker."""

        async def direct_message() -> None:
            for part in plain:
                await self.interaction.user.send(part)

        await deliver(
            [
                ("ephemeral", lambda: show_ephemeral(self.interaction, parts, embed)),
                ("plain_ephemeral", lambda: show_ephemeral(self.interaction, plain)),
                ("direct_message", direct_message),
            ],
            channel=str(self.interaction.channel_id),
        )


async def show_ephemeral(
    interaction: discord.Interaction, parts: Sequence[str], embed: discord.Embed | None = None
) -> None:
    """Put `parts` in the interaction's (ephemeral) response and follow-ups, the embed on the last one."""
    parts = list(parts) or [NO_TEXT]
    for i, part in enumerate(parts):
        part_embed = embed if i == len(parts) - 1 else None
        if i == 0:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=part, embed=part_embed)
            elif part_embed is not None:
                await interaction.response.send_message(part, embed=part_embed, ephemeral=True)
            else:
                await interaction.response.send_message(part, ephemeral=True)
        elif part_embed is not None:
            await interaction.followup.send(part, embed=part_embed, ephemeral=True)
        else:
            await interaction.followup.send(part, ephemeral=True)
