"""Slack interactivity: the buttons under answers (votes, share/dismiss, hand-off, resolved) and the admin's
hide/unhide on `/sources`, plus the private-first sink that shows an answer to the asker alone.

Each click is acked at once; the work after it goes through `bot.answer_actions`, shared with Discord.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.answer_actions import (
    ALREADY_SHARED,
    HANDOFF_FAILED,
    NO_ESCALATION,
    NOT_TAGGED,
    RESOLVED_BEFORE,
    STALE_BUTTON,
    UNKNOWN_ANSWER,
    AnswerActions,
    Resolve,
)
from bot.conversation import Conversation
from bot.slack import buttons
from bot.slack.blocks import Block, answer_blocks, answer_text, failure_blocks
from bot.slack.delivery import CALL_ERRORS, describe
from bot.slack.knowledge import offer_save
from bot.slack.mrkdwn import escape
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)

PLATFORM = "slack"
VOTED = {1: "Thanks! Your :+1: is recorded.", -1: "Thanks! Your :-1: is recorded; it helps us improve."}


class PrivateFirstSink:
    """The answer as an ephemeral message in the thread, seen by the asker only, with "Share in thread" and
    "Dismiss" (no streaming: an ephemeral message cannot be edited)."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str, user: str) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user

    async def started(self) -> None:
        pass

    async def update(self, partial_text: str) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        actions = buttons.private_actions(answer.id, self.thread_ts)
        await self._post(answer_text(answer), answer_blocks(answer, actions))
        return None  # nothing public to react to until it is shared

    async def refused(self, message: str) -> None:
        await self._post(escape(message), None)

    async def failed(self, message: str, citations: list[Citation]) -> None:
        await self._post(escape(message), failure_blocks(message, citations))

    async def _post(self, text: str, blocks: list[Block] | None) -> None:
        await self.client.chat_postEphemeral(
            channel=self.channel, user=self.user, thread_ts=self.thread_ts, text=text, blocks=blocks
        )


def _click(body: dict[str, Any]) -> tuple[dict[str, str], str, str]:
    """(button value, channel id, user id) of a block_actions payload; {} for a value that is not ours."""
    action = (body.get("actions") or [{}])[0]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
    return buttons.read_value(action.get("value")), channel, (body.get("user") or {}).get("id", "")


def _stale(val: dict[str, str], *fields: str) -> bool:
    """A button value missing what its action needs: an old button, or a payload that is not ours."""
    if all(val.get(f) for f in fields):
        return False
    log.info("out-of-date button clicked", extra={"event": "slack_button_stale"})
    return True


def _thread_of(body: dict[str, Any], val: dict[str, Any]) -> str | None:
    """The thread a click belongs to: from the button, else the message's thread, else the message itself."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    return val.get("t") or message.get("thread_ts") or container.get("thread_ts") or message.get("ts")


def register_interactions(app: AsyncApp, conversation: Conversation) -> None:
    """Add the button listeners to the Bolt app."""
    actions = AnswerActions(conversation)

    async def whisper(respond: AsyncRespond, text: str) -> None:
        """A reply only the clicker sees, leaving the clicked message as it is."""
        await respond(text=text, response_type="ephemeral", replace_original=False)

    async def vote(ack: AsyncAck, body: dict, respond: AsyncRespond, value: int) -> None:
        await ack()
        val, channel, user = _click(body)
        if _stale(val, "a"):
            await whisper(respond, STALE_BUTTON)
            return
        ok = await actions.vote(
            platform=PLATFORM, channel=channel, answer_id=val.get("a", ""), user=user, value=value
        )
        await whisper(respond, VOTED[value] if ok else UNKNOWN_ANSWER)

    @app.action(buttons.VOTE_UP)
    async def vote_up(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await vote(ack, body, respond, 1)

    @app.action(buttons.VOTE_DOWN)
    async def vote_down(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await vote(ack, body, respond, -1)

    @app.action(buttons.SHARE)
    async def share(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        val, channel, user = _click(body)
        if _stale(val, "a"):
            await whisper(respond, STALE_BUTTON)
            return
        answer, refusal = await actions.shareable(val["a"], channel, PLATFORM)
        if answer is None:
            await whisper(respond, UNKNOWN_ANSWER)
            return
        if refusal is not None:  # the channel may not read what it cites: the private answer stays
            await whisper(respond, refusal)
            return
        if not await actions.claim_share(answer.id):  # a second click, here or in another process
            log.info(
                "answer shared already", extra={"event": "answer_share_duplicate", "answer_id": answer.id}
            )
            await respond(delete_original=True)
            await whisper(respond, ALREADY_SHARED)
            return
        thread = val.get("t")
        try:
            resp = await client.chat_postMessage(
                channel=channel,
                thread_ts=thread,
                text=answer_text(answer),
                blocks=answer_blocks(
                    answer, buttons.answer_actions(answer.id, abstained=answer.abstained, thread_ts=thread)
                ),
            )
        except BaseException:
            await actions.release_share(answer.id)
            raise
        await actions.link(answer.id, platform=PLATFORM, channel=channel, message_id=resp["ts"])
        log.info("private answer shared", extra={"event": "answer_shared", "answer_id": answer.id})
        await respond(delete_original=True)

    @app.action(buttons.DISMISS)
    async def dismiss(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(delete_original=True)

    @app.action(buttons.ESCALATE)
    async def escalate(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await hand_off(ack, body, respond, client, again=False)

    @app.action(buttons.ESCALATE_AGAIN)
    async def escalate_again(
        ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await hand_off(ack, body, respond, client, again=True)

    async def hand_off(
        ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient, *, again: bool
    ) -> None:
        await ack()
        val, channel, user = _click(body)
        if _stale(val, "a"):
            await whisper(respond, STALE_BUTTON)
            return
        handoff = await actions.escalate(val["a"], platform=PLATFORM, channel=channel, user=user, again=again)
        if handoff is None:
            await whisper(respond, NO_ESCALATION)
            return
        people = " ".join(buttons.mention(t) for t in handoff.targets)
        if handoff.resolved:
            again_block = buttons.escalate_again_actions(handoff.answer_id, _thread_of(body, val))
            section = {"type": "section", "text": {"type": "mrkdwn", "text": RESOLVED_BEFORE}}
            await respond(
                text=RESOLVED_BEFORE,
                blocks=[section, again_block],
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if not handoff.new:
            await whisper(respond, f"{people} were asked already; they will reply in the thread.")
            return
        text = buttons.escalation_text(handoff.targets, user, handoff.question)
        try:
            resp = await client.chat_postMessage(
                channel=channel,
                thread_ts=_thread_of(body, val),
                text=text,
                blocks=[
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    buttons.resolve_actions(handoff.answer_id),
                ],
            )
        except CALL_ERRORS as exc:
            await actions.undelivered(handoff.answer_id, describe(exc))
            await whisper(respond, HANDOFF_FAILED)
            return
        await actions.set_escalation_message(handoff.answer_id, resp["ts"])
        await whisper(respond, f"I've asked {people} to help; they will reply in the thread.")

    @app.action(buttons.RESOLVE)
    async def resolve(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        val, channel, user = _click(body)
        if _stale(val, "a"):
            await whisper(respond, STALE_BUTTON)
            return
        groups = await _groups_of(client, user, conversation, channel)
        outcome = await actions.resolve(val.get("a", ""), user=user, groups=groups)
        if outcome is Resolve.NOT_ALLOWED:
            await whisper(respond, NOT_TAGGED)
            return
        message = body.get("message") or {}
        if outcome is Resolve.RESOLVED and message.get("ts"):
            original = next((b for b in message.get("blocks", []) if b.get("type") == "section"), None)
            done = {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f":white_check_mark: Resolved by <@{user}>"}],
            }
            await client.chat_update(
                channel=channel,
                ts=message["ts"],
                text=f"{message.get('text', '')}\n:white_check_mark: Resolved by <@{user}>",
                blocks=[b for b in (original, done) if b],
            )
        if outcome is Resolve.RESOLVED:
            await offer_save(client, channel, user, _thread_of(body, val), val.get("a", ""))
        elif outcome is Resolve.NOT_OPEN:
            await whisper(respond, "This was resolved already.")

    async def visibility(ack: AsyncAck, body: dict, respond: AsyncRespond, hidden: bool) -> None:
        await ack()
        val, _channel, user = _click(body)
        if _stale(val, "s", "d"):
            await whisper(respond, STALE_BUTTON)
            return
        title = val.get("n") or val.get("d", "")
        line = await actions.set_hidden(
            val.get("s", ""), val.get("d", ""), hidden=hidden, title=title, user=user
        )
        undo = buttons.document_button(val.get("s", ""), val.get("d", ""), title, hidden=hidden)
        blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": escape(line)}}]
        if undo is not None and conversation.is_admin(user):
            blocks.append({"type": "actions", "elements": [undo]})
        await respond(text=escape(line), blocks=blocks, response_type="ephemeral", replace_original=False)

    @app.action(buttons.HIDE)
    async def hide(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await visibility(ack, body, respond, True)

    @app.action(buttons.UNHIDE)
    async def unhide(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await visibility(ack, body, respond, False)


async def _groups_of(client: AsyncWebClient, user: str, conversation: Conversation, channel: str) -> set[str]:
    """The tagged user groups (S…) of the channel this person belongs to (needs usergroups:read)."""
    groups = set()
    for target in (
        conversation.settings.escalation.get(channel) or conversation.settings.escalation.get("*") or []
    ):
        if not target.startswith("S"):
            continue
        try:
            resp = await client.usergroups_users_list(usergroup=target)
        except SlackApiError as exc:
            log.info(
                "reading a user group failed",
                extra={"event": "slack_usergroup_failed", "error": str(exc.response.get("error"))},
            )
            continue
        if user in (resp.get("users") or []):
            groups.add(target)
    return groups


def add_hide_buttons(blocks: list[Block], citations: list[Citation]) -> list[Block]:
    """`/sources` for an admin: a "Hide" button beside each listed document."""
    by_n = {c.n: c for c in citations}
    out = []
    for block in blocks:
        text = (block.get("text") or {}).get("text", "") if block.get("type") == "section" else ""
        n = (
            int(text[1:].split(".", 1)[0])
            if text.startswith("*") and text[1:].split(".", 1)[0].isdigit()
            else None
        )
        cite = by_n.get(n) if n is not None else None
        if cite is not None and cite.doc_id:
            hide = buttons.document_button(cite.source, cite.doc_id, cite.title or cite.doc_id, hidden=False)
            if hide is not None:
                block = {**block, "accessory": hide}
        out.append(block)
    return out
