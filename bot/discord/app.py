"""The Discord adapter: @mentions and DMs, `/ask`, `/sources`, `/resync`, and 👍/👎 reactions as feedback.

It only translates discord.py events into `bot.conversation` questions and renders the answer events back; access,
limits, budgets, streaming and the query log live in the conversation layer, shared with Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.answer_channels import QuietSink, is_answer_channel, looks_like_question, private_first
from bot.conversation import Conversation, Question
from bot.discord import components, knowledge
from bot.discord.identity import DiscordIdentity
from bot.discord.ids import access_channel_id, role_ids, role_names
from bot.discord.render import clip, sources_embed, split_message
from bot.discord.sinks import ChannelReplySink, InteractionSink, show_ephemeral
from bot.runtime import Runtime, Service, run
from bot.settings import BotSettings, get_bot_settings
from rag_core.errors import RagbotError, UserError
from rag_core.types import Turn

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

PLATFORM = "discord"
# Earlier thread messages read for a follow-up (then bounded by settings.history_max_tokens).
HISTORY_MESSAGES = 50
DEDUPE_TTL_S = 24 * 3600  # a resumed gateway session can replay events from well before a reconnect
VOTES = {"👍": 1, "👎": -1}
_SKIN_TONES = "".join(chr(c) for c in range(0x1F3FB, 0x1F400))
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    read_message_history=True,
    add_reactions=True,
    create_public_threads=True,  # answer channels answer in a thread started from the question
)  # what the bot needs in a channel; docs/discord.md builds the invite URL from it
COMMAND_FAILED = "Sorry, something went wrong with that command. It has been logged."
NO_SOURCES = "No sources matched that question."


def vote_value(emoji: str) -> int | None:
    """+1 for 👍, -1 for 👎 (any skin tone), None for every other reaction."""
    return VOTES.get(emoji.rstrip(_SKIN_TONES))


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with the permissions it needs and its slash commands."""
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )


class RagbotClient(discord.Client):
    """discord.py client wired to the conversation layer."""

    def __init__(self, settings: BotSettings, conversation: Conversation) -> None:
        intents = discord.Intents.default()  # guilds, messages, reactions, DMs (none privileged)...
        intents.message_content = True  # ...plus the privileged one: reading what people ask
        # Answers quote documents; an "@everyone" in a page must never ping a server.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.settings = settings
        self.conversation = conversation
        self.tree = _OnceTree(self)
        conversation.identities[PLATFORM] = DiscordIdentity(settings)  # who asks, for private answers
        self.tree.error(self.on_app_command_error)
        _add_commands(self.tree, conversation)
        knowledge.add_knowledge_commands(self.tree, conversation)

    async def setup_hook(self) -> None:
        guild_id = self.settings.discord_guild_id
        if guild_id:
            # A guild's commands appear at once; global ones can take up to an hour to propagate.
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info(
            "app commands synced",
            extra={
                "event": "discord_commands_synced",
                "guild": guild_id,
                "commands": [c.name for c in synced],
            },
        )

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "discord connected",
            extra={"event": "discord_ready", "bot_user": self.user.id, "guilds": len(self.guilds)},
        )

    # --- questions in channels and DMs -----------------------------------------------------------------------

    def is_question(self, message: discord.Message) -> bool:
        """A person's message that @mentions the bot, or any person's DM to it."""
        if self.user is None or message.author.bot or message.author.id == self.user.id:
            return False
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return False
        return isinstance(message.channel, discord.DMChannel) or self.mentioned_in(message)

    def mentioned_in(self, message: discord.Message) -> bool:
        """The bot user, or the role Discord made for it (people often pick that one), is mentioned."""
        own_role = message.guild.self_role if message.guild else None
        return self.user in message.mentions or (own_role is not None and own_role in message.role_mentions)

    def is_answer_channel_question(self, message: discord.Message) -> bool:
        """A person's new top-level message in an answer channel that passes the question filter."""
        if self.user is None or message.author.bot or isinstance(message.channel, discord.Thread):
            return False
        if message.type is not discord.MessageType.default or self.mentioned_in(message):
            return False
        channel = str(message.channel.id)
        return is_answer_channel(channel, self.settings) and looks_like_question(
            message.content, self.settings
        )

    async def on_message(self, message: discord.Message) -> None:
        auto = self.is_answer_channel_question(message)
        if not auto and not self.is_question(message):
            return
        # A Redis call: in a thread, so a slow Redis never stalls the gateway's event loop.
        first = await asyncio.to_thread(
            self.conversation.first_delivery, PLATFORM, f"message:{message.id}", DEDUPE_TTL_S
        )
        if not first:
            log.info(
                "duplicate message delivery ignored", extra={"event": "dedupe", "message_id": message.id}
            )
            return
        channel_id = access_channel_id(message.channel)
        is_dm = isinstance(message.channel, discord.DMChannel)
        sink: Any = components.ThreadStartingSink(message) if auto else ChannelReplySink(message)
        if not is_dm and private_first(channel_id, self.settings):
            sink = components.PrivatePromptSink(message)
        try:
            question = Question(
                platform=PLATFORM,
                text=self.question_text(message),
                user_id=str(message.author.id),
                channel_id=access_channel_id(message.channel),
                is_dm=isinstance(message.channel, discord.DMChannel),
                thread_id=str(sink.channel.id) if isinstance(sink.channel, discord.Thread) else None,
                history=await self.history_for(message),
                roles=role_names(message.author),
                role_ids=role_ids(message.author),
                # private first: the answer opens for the asker alone until shared (which re-checks)
                asker_only=isinstance(sink, components.PrivatePromptSink),
                message_id=str(message.id),
            )
            answer = await self.conversation.ask(question, QuietSink(sink, channel_id) if auto else sink)
        except Exception:
            log.exception("answering a message failed", extra={"event": "discord_message_failed"})
            with suppress(discord.HTTPException):
                await sink.refused("Sorry, something went wrong while answering. It has been logged.")
            return
        finally:
            await sink.stop_typing()
        if answer is None or not sink.messages:
            return
        if len(sink.messages) > 1:
            await self._link_continuations(answer.id, question.channel_id, sink.message_ids[1:])
        await self._offer_votes(sink.messages[-1])
        await components.add_answer_buttons(sink.messages[-1], answer)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component and await first_interaction(
            self.conversation, interaction
        ):
            await components.on_component(self.conversation, interaction)
        await knowledge.on_interaction(self.conversation, interaction)

    async def _offer_votes(self, message: discord.Message) -> None:
        """Put 👍 and 👎 under an answer so a vote is one click (the bot's own reactions are not votes)."""
        try:
            for emoji in VOTES:
                await message.add_reaction(emoji)
        except discord.HTTPException:  # e.g. no Add Reactions permission here: people can still react
            log.info("could not add vote reactions", extra={"event": "vote_reactions_failed"})

    def question_text(self, message: discord.Message) -> str:
        """The message without the bot's own mention."""
        assert self.user is not None
        text = message.content
        mentions = [f"<@{self.user.id}>", f"<@!{self.user.id}>"]
        own_role = message.guild.self_role if message.guild else None
        if own_role is not None:
            mentions.append(own_role.mention)
        for mention in mentions:
            text = text.replace(mention, " ")
        return text.strip()

    def _turn(self, message: discord.Message) -> Turn | None:
        text = self.question_text(message)
        if not text:
            return None
        return Turn(role="assistant" if message.author == self.user else "user", text=text)

    async def history_for(self, message: discord.Message) -> list[Turn]:
        """Earlier messages of the thread (or the message replied to), oldest first, within the token budget."""
        earlier: list[discord.Message] = []
        try:
            channel = message.channel
            if isinstance(channel, discord.Thread):
                async for m in channel.history(limit=HISTORY_MESSAGES, before=message):
                    earlier.append(m)
                earlier.reverse()
                starter = await self._thread_starter(channel)
                if starter is not None:
                    earlier.insert(0, starter)
            elif message.reference is not None and isinstance(message.reference.resolved, discord.Message):
                earlier.append(message.reference.resolved)
        except discord.HTTPException:  # history is context, not a reason to fail the answer
            log.warning("reading thread history failed", exc_info=True, extra={"event": "history_failed"})
        turns = [t for t in (self._turn(m) for m in earlier) if t is not None]
        return turns  # the engine bounds it to settings.history_max_tokens

    async def _thread_starter(self, thread: discord.Thread) -> discord.Message | None:
        """The channel message a thread was started from (same id as the thread), when there is one."""
        if thread.starter_message is not None:
            return thread.starter_message
        parent = thread.parent
        if not isinstance(parent, discord.TextChannel):
            return None
        try:
            return await parent.fetch_message(thread.id)
        except discord.HTTPException:  # NotFound: a thread not started from a message
            return None

    async def _link_continuations(self, answer_id: str, channel: str, message_ids: list[str]) -> None:
        """Let votes on an answer's continuation messages count for the answer too."""
        feedback = self.conversation.feedback
        if feedback is None:
            return
        for message_id in message_ids:
            try:
                await asyncio.to_thread(
                    feedback.link_message,
                    answer_id,
                    platform=PLATFORM,
                    channel=channel,
                    message_id=message_id,
                )
            except Exception:
                log.exception(
                    "linking a continuation message failed", extra={"event": "feedback_link_failed"}
                )

    # --- feedback ---------------------------------------------------------------------------------------------

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A question deleted while it is answered: stop answering it (the LLM call is closed)."""
        channel = self.get_channel(payload.channel_id)
        channel_id = access_channel_id(channel) if channel is not None else str(payload.channel_id)
        self.conversation.cancel_question(PLATFORM, channel_id, str(payload.message_id))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.member is not None and payload.member.bot:
            return
        await self._reaction(payload, self.conversation.vote)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload, self.conversation.retract)

    async def _reaction(self, payload: discord.RawReactionActionEvent, record: Callable[..., Any]) -> None:
        value = vote_value(str(payload.emoji))
        if value is None or self.user is None or payload.user_id == self.user.id:
            return
        if payload.message_author_id is not None and payload.message_author_id != self.user.id:
            return  # a reaction on someone else's message: not feedback on an answer
        channel = await self._feedback_channel(payload.channel_id)
        await record(
            platform=PLATFORM,
            channel=channel,
            message_id=str(payload.message_id),
            user=str(payload.user_id),
            value=value,
        )

    async def _feedback_channel(self, channel_id: int) -> str:
        """The channel id answers are logged under (a thread's parent), for a channel seen in an event."""
        channel = self.get_channel(channel_id)
        if channel is None:
            with suppress(discord.HTTPException):
                channel = await self.fetch_channel(channel_id)
        return access_channel_id(channel) if channel is not None else str(channel_id)

    # --- errors -----------------------------------------------------------------------------------------------

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.name if interaction.command else None
        original = getattr(error, "original", error)
        if isinstance(original, RagbotError):
            message = str(original)
        else:
            message = COMMAND_FAILED
            log.error(
                "app command failed",
                exc_info=original,
                extra={"event": "discord_command_failed", "command": command},
            )
        with suppress(discord.HTTPException):
            await show_ephemeral(interaction, [clip(message, 2000)])


async def first_interaction(conversation: Conversation, interaction: discord.Interaction) -> bool:
    """True the first time an interaction id is seen: a resumed gateway session can deliver INTERACTION_CREATE
    again, and a second ack would fail (40060) after the work was done twice."""
    first = await asyncio.to_thread(
        conversation.first_delivery, PLATFORM, f"interaction:{interaction.id}", DEDUPE_TTL_S
    )
    if not first:
        log.info("duplicate interaction ignored", extra={"event": "dedupe", "interaction_id": interaction.id})
    return first


class _OnceTree(app_commands.CommandTree):
    """The command tree, running each slash command interaction once."""

    client: RagbotClient

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await first_interaction(self.client.conversation, interaction)


def _question(interaction: discord.Interaction, text: str) -> Question:
    channel = interaction.channel
    return Question(
        platform=PLATFORM,
        text=text,
        user_id=str(interaction.user.id),
        channel_id=access_channel_id(channel) if channel is not None else str(interaction.channel_id),
        is_dm=interaction.guild is None,
        thread_id=str(channel.id) if isinstance(channel, discord.Thread) else None,
        roles=role_names(interaction.user),
        role_ids=role_ids(interaction.user),
        asker_only=True,  # slash commands answer ephemerally, to the asker alone
    )


def _add_commands(tree: app_commands.CommandTree, conversation: Conversation) -> None:
    """Register /ask, /sources and /resync; each replies only to the person who ran it."""

    @tree.command(name="ask", description="Ask a question; the answer is shown only to you.")
    @app_commands.describe(question="What you want to know")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        sink = InteractionSink(interaction)
        await sink.started()  # defer within Discord's 3-second window, before any slow work
        answer = await conversation.ask(_question(interaction, question), sink)
        if answer is not None:  # private already: offer to share it, dismiss it, or ask a person
            await interaction.edit_original_response(view=components.private_view(answer.id))

    @tree.command(name="sources", description="List the documents that match a question, without an answer.")
    @app_commands.describe(question="What you want sources for")
    async def sources(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            citations = await conversation.sources(_question(interaction, question))
        except RagbotError as exc:  # e.g. an empty question
            await show_ephemeral(interaction, [str(exc)])
            return
        if not citations:
            await show_ephemeral(interaction, [NO_SOURCES])
            return
        embed = sources_embed(citations, title=f"Sources: {question}")
        await show_ephemeral(interaction, [f"{len(citations)} sources for your question:"], embed)
        if conversation.is_admin(str(interaction.user.id), role_names(interaction.user)):
            await interaction.edit_original_response(view=components.hide_view(conversation, citations))

    @tree.command(name="resync", description="Re-sync sources into the index now (admins only).")
    @app_commands.describe(
        source="One source to sync (default: all)", full="Re-read and re-embed every document"
    )
    async def resync(interaction: discord.Interaction, source: str | None = None, full: bool = False) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        lines: list[str] = []

        async def progress(line: str) -> None:
            lines.append(line)
            await interaction.edit_original_response(content=clip("\n".join(lines[-15:]), 2000))

        report = await conversation.resync(
            str(interaction.user.id), role_names(interaction.user), source, full, progress
        )
        await show_ephemeral(interaction, split_message(report))

    @resync.autocomplete("source")
    async def source_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = [s.name for s in conversation.settings.sources if current.lower() in s.name.lower()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]


def build_client(settings: BotSettings, conversation: Conversation) -> RagbotClient:
    """The Discord client: message-content intent, reaction events, and the app command tree."""
    return RagbotClient(settings, conversation)


# --- process entry point ------------------------------------------------------------------------------------


def discord_service(settings: BotSettings) -> Service:
    """The Discord gateway connection; a rejected token or a missing intent ends it with a `UserError`."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        raise UserError("DISCORD_TOKEN is not set; create a bot token as docs/discord.md describes")

    async def run(runtime: Runtime) -> None:
        client = build_client(settings, runtime.conversation)
        try:
            async with client:  # closes the gateway and HTTP session however this ends
                await client.start(token)
        except discord.LoginFailure:
            raise UserError(
                "Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal"
            ) from None
        except discord.PrivilegedIntentsRequired:
            raise UserError(
                "Discord refused the Message Content intent; enable it under Bot → Privileged Gateway Intents "
                "in the developer portal (docs/discord.md)"
            ) from None

    return Service("discord", run)


def main() -> int:
    """Run only the Discord bot (a per-role process) until stopped."""
    settings = get_bot_settings()
    return run(settings, [discord_service(settings)])  # a missing token fails before the models load
