"""The Slack adapter: translates Slack events and commands to the conversation layer and its events back.

One `AsyncApp` serves both Socket Mode and HTTP (Events API) mode. Events are acked by Bolt at once and their
listener keeps running as an asyncio task (`process_before_response=False`); slash commands call `ack()` first
and do their work afterwards, so the 3-second ack never waits on the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.answer_channels import QuietSink, is_answer_channel, looks_like_question, private_first
from bot.conversation import (
    RESYNC_REFUSAL,
    Conversation,
    Question,
    Undelivered,
    parse_resync_args,
)
from bot.runtime import Runtime, Service, run
from bot.settings import BotSettings, get_bot_settings
from bot.slack.blocks import (
    SEARCHING,
    answer_blocks,
    answer_text,
    failure_blocks,
    sources_blocks,
    sources_text,
    streaming_text,
)
from bot.slack.buttons import private_actions
from bot.slack.delivery import (
    CALL_ERRORS,
    Reply,
    ResponseUrlDelivery,
    ThreadDelivery,
    describe,
    plain_with_sources,
)
from bot.slack.http import actions_ok, http_app, keep_bodies_out_of_bolt_logs
from bot.slack.identity import SlackIdentity
from bot.slack.interactions import PrivateFirstSink, add_hide_buttons, register_interactions
from bot.slack.knowledge import register_knowledge
from bot.slack.mrkdwn import escape, mrkdwn_to_plain, truncate
from bot.slack.subtypes import FILE_ONLY, AttachmentNoteSink, has_files, is_person_message
from connectors.live_events import recording
from connectors.slack_threads.events import CHANNEL_EVENTS
from rag_core.errors import RagbotError, UserError
from rag_core.feedback.serving import listen
from rag_core.feedback.serving import serve as serve_asgi
from rag_core.types import Answer, Citation, Turn

if TYPE_CHECKING:
    from connectors.slack_threads.events import SlackChangeRecorder

log = logging.getLogger(__name__)

PLATFORM = "slack"
THINKING_REACTION = "eyes"
VOTE_REACTIONS = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}
ASK_USAGE = "Usage: /ask <question>, e.g. /ask how do I request time off?"
SOURCES_USAGE = "Usage: /sources <question>, e.g. /sources expense policy"
HISTORY_FETCH_LIMIT = 50  # thread messages read for a follow-up (then bounded by tokens)
RESPONSE_URL_PROGRESS_POSTS = 3  # a response_url takes 5 posts; keep room for the report
RESPONSE_URL_PROGRESS_INTERVAL_S = 5.0


def vote_value(reaction: str) -> int | None:
    """+1/-1 for 👍/👎 (any skin tone), None for other reactions."""
    return VOTE_REACTIONS.get(reaction.split("::", 1)[0])


# --- answer sinks ------------------------------------------------------------------------------------------
class ThreadSink:
    """Renders an answer as a thread reply: 👀 on the question, "Searching…", streamed edits, final blocks.

    Slack refusing a post falls back as bot.slack.delivery describes; 👀 comes off whatever happens."""

    def __init__(
        self, client: AsyncWebClient, channel: str, thread_ts: str, question_ts: str, user: str = ""
    ) -> None:
        self.client = client
        self.channel = channel
        self.question_ts = question_ts
        self.delivery = ThreadDelivery(client, channel, thread_ts, user)
        self._reacted = False

    @property
    def ts(self) -> str | None:
        """The bot's reply in the thread, edited in place."""
        return self.delivery.ts

    async def started(self) -> None:
        try:
            await self.client.reactions_add(
                channel=self.channel, timestamp=self.question_ts, name=THINKING_REACTION
            )
            self._reacted = True
        except CALL_ERRORS as exc:  # e.g. already_reacted; the reply itself matters more
            log.info(
                "could not add the 👀 reaction",
                extra={"event": "slack_reaction_failed", "error": describe(exc)},
            )
        await self.delivery.placeholder(SEARCHING)

    async def update(self, partial_text: str) -> None:
        await self.delivery.edit(streaming_text(partial_text))

    async def finished(self, answer: Answer) -> str | None:
        heading = "Closest sources" if answer.abstained else "Sources"
        plain = plain_with_sources(answer_text(answer), answer.citations, heading)
        return await self._show(Reply(answer_text(answer), answer_blocks(answer), plain))

    async def refused(self, message: str) -> None:
        await self._show(Reply(escape(message)))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        plain = plain_with_sources(f":warning: {escape(message)}", citations, "Sources found")
        await self._show(Reply(escape(message), failure_blocks(message, citations), plain))

    async def _show(self, reply: Reply) -> str | None:
        try:
            return await self.delivery.show(reply)
        finally:
            await self._unreact()

    async def _unreact(self) -> None:
        if not self._reacted:
            return
        self._reacted = False
        try:
            await self.client.reactions_remove(
                channel=self.channel, timestamp=self.question_ts, name=THINKING_REACTION
            )
        except CALL_ERRORS as exc:
            log.info(
                "could not remove the 👀 reaction",
                extra={"event": "slack_reaction_failed", "error": describe(exc)},
            )


class EphemeralSink:
    """`/ask`: the answer only the asker sees, through the command's response_url (no streaming edits: a
    response_url accepts only five posts); falls back as bot.slack.delivery describes."""

    def __init__(self, respond: AsyncRespond, client: AsyncWebClient, channel: str, user: str) -> None:
        self.respond = respond
        self.delivery = ResponseUrlDelivery(respond, client, channel, user)

    async def started(self) -> None:
        pass  # the ack already said "Searching…"

    async def update(self, partial_text: str) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        heading = "Closest sources" if answer.abstained else "Sources"
        plain = plain_with_sources(answer_text(answer), answer.citations, heading)
        blocks = answer_blocks(answer, private_actions(answer.id, None))  # "Share" posts it in the channel
        await self.delivery.show(Reply(answer_text(answer), blocks, plain))
        return None  # ephemeral messages cannot be reacted to

    async def refused(self, message: str) -> None:
        await self.delivery.show(Reply(escape(message)))

    async def failed(self, message: str, citations: list[Citation]) -> None:
        plain = plain_with_sources(f":warning: {escape(message)}", citations, "Sources found")
        await self.delivery.show(Reply(escape(message), failure_blocks(message, citations), plain))


# --- the app -----------------------------------------------------------------------------------------------
def slack_change_recorder(settings: BotSettings) -> SlackChangeRecorder | None:
    """Events as change hints for the Slack threads sources (connectors/live_events.py), when one is configured
    and Redis is there to carry them to the sync."""
    if not settings.redis_url or not any(s.kind == "slack_threads" for s in settings.sources):
        return None
    from connectors.slack_threads.events import SlackChangeRecorder

    return SlackChangeRecorder(settings.redis_url)


def change_recorder(
    settings: BotSettings,
) -> contextlib.AbstractAsyncContextManager[SlackChangeRecorder | None]:
    """The recorder `build_app` feeds, for as long as the app serves (`live_events.recording`)."""
    return recording(functools.partial(slack_change_recorder, settings))


def build_app(
    settings: BotSettings,
    conversation: Conversation,
    *,
    client: AsyncWebClient | None = None,
    recorder: SlackChangeRecorder | None = None,
) -> AsyncApp:
    """The Bolt app with every listener registered; `client` lets tests point the Web API at a local server,
    `recorder` (from `change_recorder`) takes every verified event as change hints."""
    if client is None:
        token = _required_tokens(settings, http=None)["SLACK_BOT_TOKEN"]
        # No SDK retry handlers: replies retry (honouring Retry-After) and fall back in bot.slack.delivery.
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url)
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    keep_bodies_out_of_bolt_logs()  # before Bolt builds its verification middleware's logger
    app = AsyncApp(client=client, signing_secret=secret, process_before_response=False)
    conversation.identities[PLATFORM] = SlackIdentity(client, settings)  # who asks, for private answers

    if recorder is not None:

        @app.middleware
        async def record_source_changes(body: dict, next: Callable) -> BoltResponse | None:
            """Every verified event Bolt passes on tells the Slack threads source what changed. Bolt drops the
            bot's own events first: its answers are left out of thread documents by default (`skip_bot_messages`);
            with that off they come in when a person next writes in the thread, or at reconciliation. The
            recorder only queues the hints (its own thread writes them): acks and answers never wait on Redis."""
            recorder(body)
            return await next()

    @app.middleware
    async def ignore_bot_messages(body: dict, next: Callable) -> BoltResponse | None:
        """Messages written by bots (this one included) are never questions."""
        event = body.get("event") or {}
        if event.get("type") in ("message", "app_mention") and (
            event.get("bot_id") or event.get("subtype") == "bot_message"
        ):
            return BoltResponse(status=200, body="")
        return await next()

    @app.middleware
    async def drop_duplicate_deliveries(body: dict, next: Callable, request: Any) -> BoltResponse | None:
        """Slack retries (X-Slack-Retry-Num) and re-sends events; each event id is handled once."""
        event_id = body.get("event_id")
        # Redis calls run in a thread: a slow Redis must not stall every other request's ack.
        if event_id and not await asyncio.to_thread(conversation.first_delivery, PLATFORM, event_id):
            retry = (request.headers.get("x-slack-retry-num") or [None])[0]
            log.info("duplicate delivery dropped", extra={"event": "slack_duplicate", "retry": retry})
            return BoltResponse(status=200, body="")
        return await next()

    @app.error
    async def log_errors(error: Exception, body: dict) -> None:
        log.error(
            "slack listener failed",
            exc_info=error,
            extra={
                "event": "slack_listener_failed",
                "type": body.get("type"),
                "command": body.get("command"),
            },
        )

    @app.event("app_mention")
    async def answer_mention(event: dict, context: AsyncBoltContext, client: AsyncWebClient) -> None:
        is_dm = event.get("channel_type") == "im" or event.get("channel", "").startswith("D")
        await _answer_message(event, context, client, is_dm=is_dm)

    @app.event("message")
    async def answer_direct_message(event: dict, context: AsyncBoltContext, client: AsyncWebClient) -> None:
        # Only a person's messages in DMs and new top-level questions in answer channels are questions; edits,
        # joins, thread replies and channel chatter are not. A mention is answered by answer_mention.
        if event.get("subtype") == "message_deleted":  # a question deleted while answered: stop answering it
            deleted = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
            if deleted:
                conversation.cancel_question(PLATFORM, event.get("channel", ""), str(deleted))
            return
        if not is_person_message(event):
            return
        if event.get("channel_type") == "im":
            if has_files(event) and not mrkdwn_to_plain(event.get("text", "")).strip():
                await _file_only(event, client)
                return
            await _answer_message(event, context, client, is_dm=True)
        elif (
            is_answer_channel(event.get("channel", ""), settings)
            and not event.get("thread_ts")
            and f"<@{context.bot_user_id}>" not in event.get("text", "")
            and looks_like_question(mrkdwn_to_plain(event.get("text", "")), settings)
        ):
            await _answer_message(event, context, client, is_dm=False, auto=True)

    async def _answer_message(
        event: dict, context: AsyncBoltContext, client: AsyncWebClient, is_dm: bool, auto: bool = False
    ) -> None:
        channel, ts = event["channel"], event["ts"]
        # A mention in a DM can arrive both as app_mention and as message: answer the message once.
        if not await asyncio.to_thread(conversation.first_delivery, PLATFORM, f"msg:{channel}:{ts}"):
            return
        bot_user_id = context.bot_user_id
        thread_ts = event.get("thread_ts")
        history = await _thread_history(client, channel, thread_ts, ts, bot_user_id) if thread_ts else []
        question = Question(
            platform=PLATFORM,
            text=mrkdwn_to_plain(event.get("text", ""), drop_user=bot_user_id),
            user_id=event.get("user", ""),
            channel_id=channel,
            is_dm=is_dm,
            thread_id=thread_ts or ts,
            history=history,
            message_id=ts,
        )
        sink: Any = ThreadSink(client, channel, thread_ts or ts, ts, user=question.user_id)
        if not is_dm and private_first(channel, settings):
            sink = PrivateFirstSink(client, channel, thread_ts or ts, question.user_id)
            question.asker_only = True  # shown to the asker alone until shared (which re-checks)
        if has_files(event):
            sink = AttachmentNoteSink(sink)
        await conversation.ask(question, QuietSink(sink, channel) if auto else sink)

    async def _file_only(event: dict, client: AsyncWebClient) -> None:
        """A DM with only a file: say files are not read, once per message."""
        channel, ts = event["channel"], event["ts"]
        if not await asyncio.to_thread(conversation.first_delivery, PLATFORM, f"msg:{channel}:{ts}"):
            return
        log.info("file without text in a DM", extra={"event": "slack_file_only"})
        try:
            await client.chat_postMessage(channel=channel, thread_ts=event.get("thread_ts"), text=FILE_ONLY)
        except CALL_ERRORS as exc:
            log.warning("file reply failed", extra={"event": "slack_reply_failed", "error": describe(exc)})

    async def _thread_history(
        client: AsyncWebClient, channel: str, thread_ts: str, before_ts: str, bot_user_id: str | None
    ) -> list[Turn]:
        try:
            resp = await client.conversations_replies(
                channel=channel, ts=thread_ts, limit=HISTORY_FETCH_LIMIT
            )
        except SlackApiError as exc:
            log.warning(
                "reading the thread failed", extra={"event": "slack_history_failed", "error": describe(exc)}
            )
            return []
        turns: list[Turn] = []
        messages: list[dict[str, Any]] = resp.get("messages", [])
        for msg in messages:
            if float(msg.get("ts", 0)) >= float(before_ts) or msg.get("subtype") in (
                "channel_join",
                "thread_broadcast",
            ):
                continue
            from_bot = bool(msg.get("bot_id")) or (bot_user_id is not None and msg.get("user") == bot_user_id)
            text = mrkdwn_to_plain(msg.get("text", ""), drop_user=bot_user_id)
            if not text or (from_bot and text == mrkdwn_to_plain(SEARCHING)):
                continue
            turns.append(Turn(role="assistant" if from_bot else "user", text=text))
        return turns  # the engine bounds it to settings.history_max_tokens

    @app.command("/ask")
    async def ask_command(
        ack: AsyncAck, command: dict, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        text = mrkdwn_to_plain(command.get("text", ""))
        if not text:
            await ack(text=ASK_USAGE)
            return
        await ack(text=f"{SEARCHING} _{escape(truncate(text, 200))}_")
        question = _command_question(command, text)
        sink = EphemeralSink(respond, client, question.channel_id, question.user_id)
        await conversation.ask(question, sink)

    @app.command("/sources")
    async def sources_command(
        ack: AsyncAck, command: dict, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        text = mrkdwn_to_plain(command.get("text", ""))
        if not text:
            await ack(text=SOURCES_USAGE)
            return
        await ack()
        question = _command_question(command, text)
        delivery = ResponseUrlDelivery(respond, client, question.channel_id, question.user_id)
        try:
            citations = await conversation.sources(question)
            blocks = sources_blocks(text, citations)
            if conversation.is_admin(question.user_id):
                blocks = add_hide_buttons(blocks, citations)
            reply = Reply(sources_text(citations), blocks, sources_text(citations))
        except RagbotError as exc:
            reply = Reply(escape(str(exc)))
        except Exception:
            log.exception("sources lookup failed", extra={"event": "slack_sources_failed"})
            reply = Reply("Sorry, looking up sources failed. Please try again.")
        try:
            await delivery.show(reply)
        except Undelivered as exc:
            log.error("sources reply undelivered", extra={"event": "answer_undelivered", "error": str(exc)})

    @app.command("/resync")
    async def resync_command(ack: AsyncAck, command: dict, respond: AsyncRespond) -> None:
        user = command.get("user_id", "")
        if not conversation.is_admin(user):
            await ack(text=RESYNC_REFUSAL)
            return
        try:
            source, full = parse_resync_args(command.get("text", ""), [s.name for s in settings.sources])
        except RagbotError as exc:
            await ack(text=str(exc))
            return
        what = f"`{escape(source)}`" if source else "all sources"
        await ack(text=f":arrows_counterclockwise: Syncing {what}{' (full re-read)' if full else ''}…")
        progress = _ProgressPoster(respond)
        report = await conversation.resync(user, [], source, full, progress.post)
        await respond(text=f"*Sync report*\n```\n{escape(report)}\n```", response_type="ephemeral")

    def _command_question(command: dict, text: str) -> Question:
        channel = command.get("channel_id", "")
        return Question(
            platform=PLATFORM,
            text=text,
            user_id=command.get("user_id", ""),
            channel_id=channel,
            is_dm=command.get("channel_name") == "directmessage" or channel.startswith("D"),
            asker_only=True,  # /ask and /sources reply ephemerally, to the asker alone
        )

    @app.event(re.compile("^(?:{})$".format("|".join(sorted(CHANNEL_EVENTS)))))
    async def channel_changed() -> None:
        """Channel renames, archives, deletions: subscribed to for the recorder only; handled, so Bolt acks them
        without its "unhandled request" warning."""

    @app.event("reaction_added")
    async def record_vote(event: dict, context: AsyncBoltContext) -> None:
        if args := _vote_args(event, context):
            await conversation.vote(**args)

    @app.event("reaction_removed")
    async def retract_vote(event: dict, context: AsyncBoltContext) -> None:
        if args := _vote_args(event, context):
            await conversation.retract(**args)

    register_interactions(app, conversation)
    register_knowledge(app, conversation)
    return app


def _vote_args(event: dict, context: AsyncBoltContext) -> dict[str, Any] | None:
    """The vote a reaction event stands for, or None when it is not a 👍/👎 on one of this bot's messages."""
    value = vote_value(event.get("reaction", ""))
    item = event.get("item") or {}
    if value is None or item.get("type") != "message":
        return None
    if event.get("item_user") and context.bot_user_id and event["item_user"] != context.bot_user_id:
        return None
    return {
        "platform": PLATFORM,
        "channel": item.get("channel", ""),
        "message_id": item.get("ts", ""),
        "user": event.get("user", ""),
        "value": value,
    }


class _ProgressPoster:
    """Posts a few sync progress lines through the response_url, spaced out, keeping a post for the report."""

    def __init__(self, respond: AsyncRespond) -> None:
        self.respond = respond
        self.posted = 0
        self.last = 0.0

    async def post(self, line: str) -> None:
        now = time.monotonic()
        if self.posted >= RESPONSE_URL_PROGRESS_POSTS or now - self.last < RESPONSE_URL_PROGRESS_INTERVAL_S:
            log.debug("sync progress not posted", extra={"event": "resync_progress", "line": line})
            return
        self.posted += 1
        self.last = now
        await self.respond(text=f"_{escape(line)}_", response_type="ephemeral")


# --- process entry point -----------------------------------------------------------------------------------
def _required_tokens(settings: BotSettings, http: bool | None) -> dict[str, str]:
    """The tokens a mode needs (http None: just the bot token), or a UserError naming the first one missing."""
    needed = {"SLACK_BOT_TOKEN": settings.slack_bot_token}
    if http is True:
        needed["SLACK_SIGNING_SECRET"] = settings.slack_signing_secret
    elif http is False:
        needed["SLACK_APP_TOKEN"] = settings.slack_app_token
    tokens: dict[str, str] = {}
    for name, value in needed.items():
        if value is None or not value.get_secret_value().strip():
            mode = {True: "HTTP mode", False: "Socket Mode", None: "the Slack bot"}[http]
            raise UserError(f"{name} is not set ({mode} needs it; RAG_{name} also works). See docs/slack.md.")
        tokens[name] = value.get_secret_value().strip()
    return tokens


def socket_service(settings: BotSettings) -> Service:
    """Slack over Socket Mode (an outbound WebSocket: no public URL needed)."""
    app_token = _required_tokens(settings, http=False)["SLACK_APP_TOKEN"]

    async def run(runtime: Runtime) -> None:
        async with change_recorder(settings) as recorder:
            # The handler's client starts tasks in its constructor, so it is built inside the running loop.
            handler = socket_handler(build_app(settings, runtime.conversation, recorder=recorder), app_token)
            log.info("slack bot starting in Socket Mode", extra={"event": "slack_start"})
            await handler.connect_async()
            try:
                await asyncio.Event().wait()  # until cancelled
            finally:
                await handler.close_async()

    return Service("slack-socket", run)


def socket_handler(app: AsyncApp, app_token: str) -> Any:
    """Bolt's Socket Mode handler, dropping (acked, one log line) a click Bolt cannot read: Bolt builds the
    `action` of a block_actions payload before any middleware runs and raises on `actions: []`. HTTP mode checks
    the same at its front door (bot.slack.http)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.socket_mode.response import SocketModeResponse

    class Handler(AsyncSocketModeHandler):
        async def handle(self, client: Any, req: Any) -> None:
            payload = req.payload if isinstance(req.payload, dict) else {}
            if payload.get("type") == "block_actions" and not actions_ok(payload.get("actions")):
                log.warning(
                    "slack request rejected",
                    extra={"event": "slack_request_rejected", "reason": "actions is not a list of actions"},
                )
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            await super().handle(client, req)

    return Handler(app, app_token)


def http_service(settings: BotSettings) -> Service:
    """Slack over HTTP (Events API): Slack posts events, commands and interactivity to /slack/events on the
    process's front door (RAG_HTTP_PORT)."""
    _required_tokens(settings, http=True)

    async def run(runtime: Runtime) -> None:
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        async with change_recorder(settings) as recorder:
            bolt = build_app(settings, runtime.conversation, recorder=recorder)
            app = http_app(bolt, secret, settings.slack_max_body_bytes)
            if runtime.front_door is None:  # a runtime without a front door: Slack's own port, as before
                await serve_asgi(app, listen("0.0.0.0", settings.slack_http_port, "Slack HTTP mode"))
                return
            runtime.front_door.mount_slack(app)
            log.info(
                "slack bot starting in HTTP mode",
                extra={"event": "slack_start", "port": runtime.health_port, "path": "/slack/events"},
            )
            await asyncio.Event().wait()  # served by the front door until the process stops

    return Service("slack-http", run)


def main(http: bool = False) -> int:
    """Run only the Slack bot (a per-role process): Socket Mode by default, or HTTP mode."""
    settings = get_bot_settings()
    service = http_service(settings) if http else socket_service(settings)  # a missing token fails at once
    return run(settings, [service])
