"""Discord components: the buttons under answers (👍/👎, "Get help from a person"), the private-first prompt and
its "Share in thread" / "Dismiss", the hand-off's "Resolved", and the admin's hide/unhide on `/sources`.

Buttons carry `ragbot:<action>:<key>` custom ids, so they keep working after a restart; `on_component` handles
every click through `bot.answer_actions`, shared with Slack.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import discord

from bot.answer_actions import (
    HANDOFF_FAILED,
    NO_ESCALATION,
    NOT_TAGGED,
    RESOLVED_BEFORE,
    UNKNOWN_ANSWER,
    AnswerActions,
    Resolve,
)
from bot.discord.ids import access_channel_id, role_names
from bot.discord.knowledge import offer_save
from bot.discord.render import clip, split_message
from bot.discord.sinks import ChannelReplySink, answer_parts
from rag_core.types import Answer, Citation

if TYPE_CHECKING:
    from bot.conversation import Conversation

log = logging.getLogger(__name__)

PLATFORM = "discord"
PREFIX = "ragbot:"
ESCALATE_LABEL = "Get help from a person"
PROMPT = "{asker}, I have an answer for you. Only you can open it; share it here if it helps."
PROMPT_NO_ANSWER = (
    "{asker}, I couldn't find an answer in the indexed sources. Only you can open this: the closest sources, "
    "and a button to ask a person."
)
NOT_YOURS = "Only the person who asked can open this answer."
DOC_KEY_TTL_S = 7 * 24 * 3600  # a /sources listing's hide buttons work for a week
VOTED = {1: "Thanks! Your 👍 is recorded.", -1: "Thanks! Your 👎 is recorded; it helps us improve."}


def handoff_mentions(targets: list[str], asker: int) -> discord.AllowedMentions:
    """Exactly the configured helpers (users and "&role" ids) and the asker may be pinged, never anything the
    quoted question mentions: otherwise any member could make the bot ping a role they cannot ping."""
    users = [discord.Object(int(t)) for t in targets if t.isdigit()] + [discord.Object(asker)]
    roles = [discord.Object(int(t[1:])) for t in targets if t.startswith("&") and t[1:].isdigit()]
    return discord.AllowedMentions(everyone=False, users=users, roles=roles, replied_user=False)


def _button(label: str, action: str, key: str, style: discord.ButtonStyle) -> discord.ui.Button:
    return discord.ui.Button(label=label, custom_id=f"{PREFIX}{action}:{key}", style=style)


def _view(*items: discord.ui.Button) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def answer_view(answer_id: str, *, abstained: bool) -> discord.ui.View:
    """Under a public answer: 👍 / 👎 (besides reactions) and the hand-off; an "I don't know" gets the hand-off."""
    votes = (
        []
        if abstained
        else [
            _button("👍", "up", answer_id, discord.ButtonStyle.secondary),
            _button("👎", "down", answer_id, discord.ButtonStyle.secondary),
        ]
    )
    return _view(*votes, _button(ESCALATE_LABEL, "help", answer_id, discord.ButtonStyle.primary))


def private_view(answer_id: str) -> discord.ui.View:
    return _view(
        _button("Share in thread", "share", answer_id, discord.ButtonStyle.success),
        _button("Dismiss", "dismiss", answer_id, discord.ButtonStyle.secondary),
        _button(ESCALATE_LABEL, "help", answer_id, discord.ButtonStyle.primary),
    )


def mention(target: str) -> str:
    """A configured Discord id as a mention: "&id" is a role, a plain id a user."""
    return f"<@&{target[1:]}>" if target.startswith("&") else f"<@{target}>"


def escalation_text(targets: list[str], asker: int, question: str) -> str:
    people = " ".join(mention(t) for t in targets)
    quoted = discord.utils.escape_mentions(" ".join(question.split()))  # shown as text, never a mention
    return clip(f"{people}, <@{asker}> would like a person's help with:\n> {quoted}", 2000)


class ThreadStartingSink(ChannelReplySink):
    """An answer-channel answer: posted in a new thread started from the question (created only when there is
    an answer to post, so an abstention leaves no empty thread)."""

    async def _send(self, content: str, embed: discord.Embed | None, *, first: bool) -> discord.Message:
        question = self._reply_to
        if first and question is not None and isinstance(question.channel, discord.TextChannel):
            try:
                self.channel = await question.create_thread(name=clip(question.content or "Question", 90))
                self._reply_to = None
            except discord.HTTPException:  # no permission to start threads: reply in the channel instead
                log.info("could not start a thread", extra={"event": "discord_thread_failed"})
        return await super()._send(content, embed, first=first)


class PrivatePromptSink:
    """Private first for a message: a short public prompt with "Show answer" (for the asker alone), which opens
    the answer as an ephemeral message; Discord has no ephemeral replies to plain messages."""

    def __init__(self, question: discord.Message) -> None:
        self.question = question
        self.channel = question.channel
        self.messages: list[discord.Message] = []  # nothing votable until shared

    async def started(self) -> None:
        pass

    async def update(self, partial_text: str) -> None:
        pass

    async def stop_typing(self) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        label = "Show closest sources" if answer.abstained else "Show answer"
        view = _view(_button(label, "show", answer.id, discord.ButtonStyle.primary))
        prompt = PROMPT_NO_ANSWER if answer.abstained else PROMPT
        await self.question.reply(
            prompt.format(asker=self.question.author.mention), view=view, mention_author=False
        )
        return None

    async def refused(self, message: str) -> None:
        await self.question.reply(clip(message, 2000), mention_author=False)

    async def failed(self, message: str, citations: list[Citation]) -> None:
        await self.question.reply(clip(message, 2000), mention_author=False)


async def add_answer_buttons(message: discord.Message, answer: Answer) -> None:
    """Put the buttons on the (last) message of a posted answer."""
    try:
        await message.edit(view=answer_view(answer.id, abstained=answer.abstained))
    except discord.HTTPException:  # the answer stands without buttons; reactions still vote
        log.info("could not add answer buttons", extra={"event": "discord_buttons_failed"})


def hide_view(
    conversation: Conversation, citations: list[Citation], *, hidden: bool = False
) -> discord.ui.View:
    """`/sources` for an admin: "Hide 1", "Hide 2", … (the ids stay in Redis/the kv, buttons carry a short key)."""
    view = discord.ui.View(timeout=None)
    keys: set[str] = set()
    for c in citations[:25]:
        key = hashlib.sha256(f"{c.source}\0{c.doc_id}".encode()).hexdigest()[:24]
        if not c.doc_id or key in keys:  # several passages of one document: one button
            continue
        keys.add(key)
        conversation.kv.set(
            f"doc:{key}", json.dumps([c.source, c.doc_id, c.title or c.doc_id]), DOC_KEY_TTL_S
        )
        label = f"{'Unhide' if hidden else 'Hide'} {c.n}"
        style = discord.ButtonStyle.secondary if hidden else discord.ButtonStyle.danger
        view.add_item(_button(label, "unhide" if hidden else "hide", key, style))
    return view


async def on_component(conversation: Conversation, interaction: discord.Interaction) -> None:
    """Handle a click on one of ragbot's buttons (other interactions are left to discord.py)."""
    if interaction.type is not discord.InteractionType.component:
        return
    data: dict[str, Any] = dict(interaction.data or {})
    custom_id = str(data.get("custom_id", ""))
    if not custom_id.startswith(PREFIX):
        return
    action, _, key = custom_id[len(PREFIX) :].partition(":")
    handler = _HANDLERS.get(action)
    if handler is None:
        return
    try:
        await handler(AnswerActions(conversation), interaction, key)
    except Exception:
        log.exception("button failed", extra={"event": "discord_button_failed", "action": action})
        with suppress(discord.HTTPException):
            await _whisper(interaction, "Sorry, that did not work. It has been logged.")


async def _whisper(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """An ephemeral reply to the click (or a follow-up when it was answered already)."""
    if interaction.response.is_done():
        await interaction.followup.send(clip(text, 2000), ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(clip(text, 2000), ephemeral=True, **kwargs)


def _channel(interaction: discord.Interaction) -> str:
    channel = interaction.channel
    return access_channel_id(channel) if channel is not None else str(interaction.channel_id)


async def _vote(actions: AnswerActions, interaction: discord.Interaction, answer_id: str, value: int) -> None:
    ok = await actions.vote(
        platform=PLATFORM,
        channel=_channel(interaction),
        answer_id=answer_id,
        user=str(interaction.user.id),
        value=value,
    )
    await _whisper(interaction, VOTED[value] if ok else UNKNOWN_ANSWER)


async def _up(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await _vote(actions, interaction, key, 1)


async def _down(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await _vote(actions, interaction, key, -1)


async def _show(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    """The asker opens a private-first answer: an ephemeral message with Share / Dismiss."""
    answer = await actions.logged_answer(key)
    store = actions.conversation.feedback
    if answer is None or store is None:
        await _whisper(interaction, UNKNOWN_ANSWER)
        return
    record = await asyncio.to_thread(store.get_answer, key)
    if record is None or record.user_hash != store.hash_user(str(interaction.user.id)):
        await _whisper(interaction, NOT_YOURS)
        return
    parts, embed = answer_parts(answer)
    if len(parts) > 1:
        await _whisper(interaction, parts[0])
        for part in parts[1:-1]:
            await interaction.followup.send(part, ephemeral=True)
        await interaction.followup.send(
            parts[-1], embed=embed or discord.utils.MISSING, view=private_view(key), ephemeral=True
        )
    else:
        await _whisper(interaction, parts[0], embed=embed or discord.utils.MISSING, view=private_view(key))


async def _share(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    """Post the same answer (same id) publicly where it was asked, when everyone there may read what it cites;
    votes on it count for that answer."""
    answer, refusal = await actions.shareable(key, _channel(interaction), PLATFORM)
    channel = interaction.channel
    if answer is None or not isinstance(channel, discord.abc.Messageable):
        await _whisper(interaction, UNKNOWN_ANSWER)
        return
    if refusal is not None:  # the channel may not read what it cites: the private answer stays
        await _whisper(interaction, refusal)
        return
    await interaction.response.edit_message(content="Shared in the channel.", embed=None, view=None)
    parts, embed = answer_parts(answer)
    sent: list[discord.Message] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        sent.append(
            await channel.send(
                part,
                embed=embed if last and embed else discord.utils.MISSING,
                view=answer_view(answer.id, abstained=answer.abstained) if last else discord.utils.MISSING,
            )
        )
    for message in sent:
        await actions.link(
            answer.id, platform=PLATFORM, channel=_channel(interaction), message_id=str(message.id)
        )
    log.info("private answer shared", extra={"event": "answer_shared", "answer_id": answer.id})


async def _dismiss(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await interaction.response.defer()
    await interaction.delete_original_response()


async def _help(
    actions: AnswerActions, interaction: discord.Interaction, key: str, *, again: bool = False
) -> None:
    user = interaction.user
    handoff = await actions.escalate(
        key, platform=PLATFORM, channel=_channel(interaction), user=str(user.id), again=again
    )
    if handoff is None:
        await _whisper(interaction, NO_ESCALATION)
        return
    people = " ".join(mention(t) for t in handoff.targets)
    if handoff.resolved:
        view = _view(_button("Ask a person again", "helpagain", key, discord.ButtonStyle.primary))
        await _whisper(interaction, RESOLVED_BEFORE, view=view)
        return
    if not handoff.new:
        await _whisper(interaction, f"{people} were asked already; they will reply here.")
        return
    channel = interaction.channel
    assert isinstance(channel, discord.abc.Messageable)
    await interaction.response.defer(ephemeral=True, thinking=False)
    try:
        tag = await channel.send(
            escalation_text(handoff.targets, user.id, handoff.question),
            allowed_mentions=handoff_mentions(handoff.targets, user.id),
            view=_view(_button("Resolved", "resolve", key, discord.ButtonStyle.success)),
        )
    except discord.HTTPException as exc:  # e.g. 403 50013: nobody was asked, so nothing is recorded
        await actions.undelivered(key, f"HTTP {exc.status} (code {exc.code})")
        await interaction.followup.send(HANDOFF_FAILED, ephemeral=True)
        return
    await actions.set_escalation_message(key, str(tag.id))
    await interaction.followup.send(f"I've asked {people} to help; they will reply here.", ephemeral=True)


async def _help_again(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await _help(actions, interaction, key, again=True)


async def _resolve(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    user = interaction.user
    roles = list(getattr(user, "roles", []))
    outcome = await actions.resolve(
        key, user=str(user.id), roles=[r.name for r in roles], groups={f"&{r.id}" for r in roles}
    )
    if outcome is Resolve.NOT_ALLOWED:
        await _whisper(interaction, NOT_TAGGED)
    elif outcome is Resolve.NOT_OPEN:
        await _whisper(interaction, "This was resolved already.")
    else:
        content = (
            interaction.message.content if interaction.message else ""
        ) + f"\n✅ Resolved by {user.mention}"
        await interaction.response.edit_message(
            content=clip(content, 2000), view=None, allowed_mentions=discord.AllowedMentions.none()
        )
        await offer_save(interaction, key)


async def _visibility(
    actions: AnswerActions, interaction: discord.Interaction, key: str, hidden: bool
) -> None:
    raw = await asyncio.to_thread(actions.conversation.kv.get, f"doc:{key}")
    if not raw:
        await _whisper(interaction, "That listing is too old; run /sources again.")
        return
    source, doc_id, title = json.loads(raw)
    user = interaction.user
    line = await actions.set_hidden(
        source, doc_id, hidden=hidden, title=title, user=str(user.id), roles=role_names(user)
    )
    admin = actions.conversation.is_admin(str(user.id), role_names(user))
    undo = discord.ui.View(timeout=None)
    if admin:
        label = "Unhide" if hidden else "Hide"
        undo.add_item(_button(label, "unhide" if hidden else "hide", key, discord.ButtonStyle.secondary))
    await _whisper(interaction, split_message(line)[0], view=undo if admin else discord.utils.MISSING)


async def _hide(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await _visibility(actions, interaction, key, True)


async def _unhide(actions: AnswerActions, interaction: discord.Interaction, key: str) -> None:
    await _visibility(actions, interaction, key, False)


_HANDLERS = {
    "up": _up,
    "down": _down,
    "show": _show,
    "share": _share,
    "dismiss": _dismiss,
    "help": _help,
    "helpagain": _help_again,
    "resolve": _resolve,
    "hide": _hide,
    "unhide": _unhide,
}
