"""Discord side of the knowledge loop: "Save this answer for next time?" after a hand-off is resolved, the
"Save as answer" message context menu for admins, the modal both open, and Edit / Remove on a saved answer.
The work is `bot.knowledge`, shared with Slack and the API.

Buttons carry `ragbot:ksave:<answer id>`, `ragbot:kedit:<id>`, `ragbot:kremove:<id>`; the modal lives in this
process (a restart drops an open one; the button opens it again).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.discord.ids import access_channel_id, role_names
from bot.discord.render import clip
from bot.knowledge import ADMINS_ONLY, GONE, NOT_ALLOWED, OFFER, Knowledge, readers_for
from rag_core.feedback.curated import CuratedError

if TYPE_CHECKING:
    from bot.conversation import Conversation

log = logging.getLogger(__name__)

PLATFORM = "discord"
PREFIX = "ragbot:"
SAVE_LABEL = "Save answer…"
MENU_NAME = "Save as answer"
REPLIES_READ = 50  # messages read after the hand-off for the pre-filled answer
TEXT_LIMIT = 4000  # Discord's limit on a text input


def _button(label: str, action: str, key: str, style: discord.ButtonStyle) -> discord.ui.Button:
    return discord.ui.Button(label=label, custom_id=f"{PREFIX}{action}:{key}", style=style)


def _view(*items: discord.ui.Button) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def offer_view(answer_id: str) -> discord.ui.View:
    return _view(_button(SAVE_LABEL, "ksave", answer_id, discord.ButtonStyle.success))


def saved_view(curated_id: str) -> discord.ui.View:
    return _view(
        _button("Edit", "kedit", curated_id, discord.ButtonStyle.secondary),
        _button("Remove", "kremove", curated_id, discord.ButtonStyle.danger),
    )


async def offer_save(interaction: discord.Interaction, answer_id: str) -> None:
    """After "Resolved": ask the resolver alone whether to save the answer (a failure is logged only)."""
    try:
        await interaction.followup.send(OFFER, view=offer_view(answer_id), ephemeral=True)
    except discord.HTTPException as exc:
        log.info("save offer not shown", extra={"event": "curated_offer_failed", "error": str(exc.status)})


def _private(channel: Any) -> bool:
    """A DM, a private thread, or a channel @everyone cannot see: its answers stay with its members."""
    if channel is None or getattr(channel, "guild", None) is None:
        return True
    if isinstance(channel, discord.Thread):
        if channel.type is discord.ChannelType.private_thread:
            return True
        channel = channel.parent
        if channel is None:
            return True
    try:
        return not channel.permissions_for(channel.guild.default_role).view_channel
    except Exception:  # noqa: BLE001 - an unknown channel kind: never over-share
        return True


def _name(channel: Any) -> str:
    if isinstance(channel, discord.Thread) and channel.parent is not None:
        return str(channel.parent.name)
    return str(getattr(channel, "name", "") or "")


class SaveModal(discord.ui.Modal):
    """Question and answer, pre-filled and editable; saving stores and syncs (or updates) the answer."""

    def __init__(
        self,
        knowledge: Knowledge,
        *,
        question: str,
        answer: str,
        meta: dict[str, Any],
    ) -> None:
        super().__init__(title="Save answer", timeout=30 * 60)
        self.knowledge = knowledge
        self.meta = meta
        self.question: discord.ui.TextInput[SaveModal] = discord.ui.TextInput(
            label="Question", default=clip(question, 1000) or None, max_length=1000, custom_id="ragbot:kq"
        )
        self.answer: discord.ui.TextInput[SaveModal] = discord.ui.TextInput(
            label="Answer",
            style=discord.TextStyle.paragraph,
            default=clip(answer, TEXT_LIMIT) or None,
            max_length=TEXT_LIMIT,
            custom_id="ragbot:ka",
        )
        self.add_item(self.question)
        self.add_item(self.answer)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        user = interaction.user
        meta = self.meta
        try:
            if meta.get("k"):
                outcome = await self.knowledge.edit(
                    meta["k"],
                    user=str(user.id),
                    roles=role_names(user),
                    question=self.question.value,
                    answer=self.answer.value,
                )
            else:
                outcome = await self.knowledge.save(
                    self.question.value,
                    self.answer.value,
                    author=getattr(user, "display_name", None) or user.name,
                    author_id=str(user.id),
                    platform=PLATFORM,
                    channel=meta["c"],
                    channel_name=meta.get("n", ""),
                    thread_url=meta.get("u", ""),
                    readers=readers_for(PLATFORM, meta["c"], meta.get("p", True)),
                    source_answer_id=meta.get("a"),
                    cited=meta.get("cited", []),
                )
        except CuratedError as exc:
            await interaction.followup.send(clip(str(exc), 2000), ephemeral=True)
            return
        view = saved_view(outcome.answer.id) if outcome.answer is not None else discord.utils.MISSING
        await interaction.followup.send(clip(outcome.message, 2000), view=view, ephemeral=True)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        log.error("saving an answer failed", exc_info=error, extra={"event": "curated_save_failed"})
        with suppress(discord.HTTPException):
            await interaction.followup.send("Sorry, saving failed. It has been logged.", ephemeral=True)


async def _replies_since(message: discord.Message | None, channel: Any) -> str:
    """The human messages after the hand-off's tag message: what the people who helped wrote."""
    if message is None or not isinstance(channel, discord.abc.Messageable):
        return ""
    texts: list[str] = []
    try:
        async for m in channel.history(after=message, limit=REPLIES_READ, oldest_first=True):
            if not m.author.bot and m.content.strip():
                texts.append(m.content.strip())
    except discord.HTTPException as exc:
        log.info("thread not read", extra={"event": "curated_thread_failed", "error": str(exc.status)})
    return "\n\n".join(texts)


async def _save_offer(knowledge: Knowledge, interaction: discord.Interaction, answer_id: str) -> None:
    user = interaction.user
    if not await knowledge.may_save_handoff(answer_id, str(user.id), role_names(user)):
        await interaction.response.send_message(
            "Only the person who resolved this hand-off (or an admin) can save its answer.", ephemeral=True
        )
        return
    question, cited = await knowledge.draft(answer_id)
    channel = interaction.channel
    tag = await _tag_message(knowledge, answer_id, channel)
    replies = await _replies_since(tag, channel)
    meta = _where(channel, tag.jump_url if tag is not None else "") | {"a": answer_id, "cited": cited}
    await interaction.response.send_modal(SaveModal(knowledge, question=question, answer=replies, meta=meta))


async def _tag_message(knowledge: Knowledge, answer_id: str, channel: Any) -> discord.Message | None:
    """The hand-off's tagging message (its replies come after it)."""
    import asyncio

    from sqlalchemy.orm import Session

    from rag_core.feedback.models import EscalationRecord

    def message_id() -> str | None:
        with Session(knowledge.store.engine) as session:
            record = session.get(EscalationRecord, answer_id)
            return record.message_id if record is not None else None

    found = await asyncio.to_thread(message_id)
    if not found or not isinstance(channel, discord.abc.Messageable):
        return None
    try:
        return await channel.fetch_message(int(found))
    except (discord.HTTPException, ValueError):
        return None


def _where(channel: Any, url: str) -> dict[str, Any]:
    key = access_channel_id(channel) if channel is not None else ""
    return {"c": key, "n": _name(channel), "p": _private(channel), "u": url}


async def _edit(knowledge: Knowledge, interaction: discord.Interaction, curated_id: str) -> None:
    saved = await knowledge.get(curated_id)
    user = interaction.user
    if saved is None:
        await interaction.response.send_message(GONE, ephemeral=True)
        return
    if not knowledge.can_change(saved, str(user.id), role_names(user)):
        await interaction.response.send_message(NOT_ALLOWED, ephemeral=True)
        return
    modal = SaveModal(knowledge, question=saved.question, answer=saved.answer, meta={"k": saved.id})
    await interaction.response.send_modal(modal)


async def _remove(knowledge: Knowledge, interaction: discord.Interaction, curated_id: str) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    user = interaction.user
    outcome = await knowledge.remove(curated_id, user=str(user.id), roles=role_names(user))
    await interaction.followup.send(clip(outcome.message, 2000), ephemeral=True)


_HANDLERS = {"ksave": _save_offer, "kedit": _edit, "kremove": _remove}


async def on_interaction(conversation: Conversation, interaction: discord.Interaction) -> None:
    """Handle a click on one of the knowledge buttons (others are left to `bot.discord.components`)."""
    if interaction.type is not discord.InteractionType.component:
        return
    custom_id = str(dict(interaction.data or {}).get("custom_id", ""))
    action, _, key = custom_id[len(PREFIX) :].partition(":") if custom_id.startswith(PREFIX) else ("", "", "")
    handler = _HANDLERS.get(action)
    if handler is None:
        return
    try:
        await handler(Knowledge(conversation), interaction, key)
    except Exception:
        log.exception("knowledge button failed", extra={"event": "discord_button_failed", "action": action})
        with suppress(discord.HTTPException):
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    "Sorry, that did not work. It has been logged.", ephemeral=True
                )


def add_knowledge_commands(tree: app_commands.CommandTree, conversation: Conversation) -> None:
    """The "Save as answer" message context menu (admins)."""

    @tree.context_menu(name=MENU_NAME)
    async def save_as_answer(interaction: discord.Interaction, message: discord.Message) -> None:
        user = interaction.user
        if not conversation.is_admin(str(user.id), role_names(user)):
            await interaction.response.send_message(ADMINS_ONLY, ephemeral=True)
            return
        channel = interaction.channel
        question = ""
        thread = channel if isinstance(channel, discord.Thread) else None
        if thread is not None and isinstance(thread.parent, discord.TextChannel) and message.id != thread.id:
            with suppress(discord.HTTPException):  # a thread started from a message shares its id
                question = (await thread.parent.fetch_message(thread.id)).content
        meta = _where(channel, message.jump_url)
        modal = SaveModal(Knowledge(conversation), question=question, answer=message.content, meta=meta)
        await interaction.response.send_modal(modal)
