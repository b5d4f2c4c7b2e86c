"""Slack side of the knowledge loop: "Save this answer for next time?" after a hand-off is resolved, the
"Save as answer" message shortcut for admins, the modal both open (views.open / view_submission), and the
Edit / Remove buttons on a saved answer. The work is `bot.knowledge`, shared with Discord and the API.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import Conversation
from bot.knowledge import ADMINS_ONLY, GONE, NOT_ALLOWED, OFFER, Knowledge, readers_for
from bot.slack import buttons
from bot.slack.delivery import describe
from bot.slack.mrkdwn import escape, mrkdwn_to_plain, truncate
from rag_core.feedback.curated import MAX_ANSWER_CHARS, MAX_QUESTION_CHARS, CuratedError

log = logging.getLogger(__name__)

PLATFORM = "slack"
SAVE_OFFER = "ragbot_save_offer"  # the button under "Save this answer for next time?"
EDIT = "ragbot_curated_edit"
REMOVE = "ragbot_curated_remove"
SAVE_VIEW = "ragbot_save_answer"  # the modal's callback id
SAVE_SHORTCUT = "ragbot_save_as_answer"  # the message shortcut's callback id (manifest.yaml)
QUESTION_BLOCK, ANSWER_BLOCK, FIELD = "ragbot_q", "ragbot_a", "v"
METADATA_LIMIT = 3000  # Slack's limit on a view's private_metadata
FORM_FAILED = "Sorry, Slack did not open the form. Please click again."
SAVE_FAILED = "Sorry, saving the answer failed (it has been logged). Please try again in a few minutes."


def _read(raw: object) -> dict[str, Any]:
    """A button value or view metadata of ours: strings, flags and empty fields (`buttons.read_json`)."""
    return buttons.read_json(raw, (str, bool, type(None)))


def offer_blocks(answer_id: str, thread_ts: str | None) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": OFFER}},
        {
            "type": "actions",
            "block_id": f"ragbot_offer_{answer_id}",
            "elements": [
                buttons.button("Save answer…", SAVE_OFFER, buttons.value(a=answer_id, t=thread_ts), "primary")
            ],
        },
    ]


async def offer_save(
    client: AsyncWebClient, channel: str, user: str, thread_ts: str | None, answer_id: str
) -> None:
    """After "Resolved": ask the resolver alone whether to save the thread's answer (a failure is logged only)."""
    try:
        await client.chat_postEphemeral(
            channel=channel,
            user=user,
            thread_ts=thread_ts,
            text=OFFER,
            blocks=offer_blocks(answer_id, thread_ts),
        )
    except SlackApiError as exc:
        log.info("save offer not shown", extra={"event": "curated_offer_failed", "error": describe(exc)})


def modal(question: str, answer: str, metadata: dict[str, Any], note: str) -> dict[str, Any]:
    """The "Save answer" modal: question and answer, pre-filled and editable."""
    return {
        "type": "modal",
        "callback_id": SAVE_VIEW,
        "title": {"type": "plain_text", "text": "Save answer"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata, separators=(",", ":"))[:METADATA_LIMIT],
        "blocks": [
            _input(QUESTION_BLOCK, "Question", question, MAX_QUESTION_CHARS, multiline=False),
            _input(ANSWER_BLOCK, "Answer", answer, 3000, multiline=True),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(note)}]},
        ],
    }


def _input(block_id: str, label: str, initial: str, limit: int, *, multiline: bool) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": FIELD, "multiline": multiline}
    element["max_length"] = min(limit, 3000)
    if initial:
        element["initial_value"] = truncate(initial, min(limit, 3000))
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


def saved_blocks(message: str, curated_id: str) -> list[dict[str, Any]]:
    v = buttons.value(k=curated_id)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(message)}},
        {
            "type": "actions",
            "block_id": f"ragbot_curated_{curated_id}",
            "elements": [buttons.button("Edit", EDIT, v), buttons.button("Remove", REMOVE, v, "danger")],
        },
    ]


class _Thread:
    """What the modal needs from a Slack thread: its human replies, its link, its channel's name and privacy."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str | None) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts

    async def human_replies(self, bot_user_id: str | None) -> str:
        if not self.thread_ts:
            return ""
        try:
            resp = await self.client.conversations_replies(channel=self.channel, ts=self.thread_ts, limit=100)
        except SlackApiError as exc:
            log.info("thread not read", extra={"event": "curated_thread_failed", "error": describe(exc)})
            return ""
        messages: list[dict[str, Any]] = resp.get("messages", [])
        texts = [
            mrkdwn_to_plain(m.get("text", ""))
            for m in messages
            if m.get("ts") != self.thread_ts
            and not m.get("bot_id")
            and m.get("subtype") is None
            and (bot_user_id is None or m.get("user") != bot_user_id)
        ]
        return "\n\n".join(t for t in texts if t)

    async def link(self) -> str:
        if not self.thread_ts:
            return ""
        try:
            resp = await self.client.chat_getPermalink(channel=self.channel, message_ts=self.thread_ts)
        except SlackApiError:
            return ""
        return str(resp.get("permalink") or "")

    async def where(self) -> tuple[str, bool]:
        """(channel name, private): a channel Slack will not describe counts as private (never over-share)."""
        try:
            resp = await self.client.conversations_info(channel=self.channel)
        except SlackApiError as exc:
            log.info(
                "channel not described", extra={"event": "curated_channel_failed", "error": describe(exc)}
            )
            return "", True
        info = resp.get("channel") or {}
        private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        return str(info.get("name") or ""), private


def _note(private: bool, name: str) -> str:
    if private:
        return "Saved from a private conversation: only its members will get this answer."
    return f"Everyone who may search the answers source will get this answer, cited as from #{name or 'this channel'}."


async def _author(client: AsyncWebClient, user: dict[str, Any]) -> str:
    """A person's display name (needs users:read), else their Slack handle."""
    try:
        resp = await client.users_info(user=user.get("id", ""))
        info = resp.get("user") or {}
        profile = info.get("profile") or {}
        name = profile.get("display_name") or info.get("real_name") or profile.get("real_name")
        if name:
            return str(name)
    except SlackApiError:
        pass
    return str(user.get("name") or user.get("username") or user.get("id") or "someone")


def register_knowledge(app: AsyncApp, conversation: Conversation) -> None:
    """Add the knowledge-loop listeners to the Bolt app."""
    knowledge = Knowledge(conversation)

    async def whisper(respond: AsyncRespond, text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    async def open_modal(
        client: AsyncWebClient,
        respond: AsyncRespond,
        trigger_id: str,
        question: str,
        answer: str,
        meta: dict[str, Any],
    ) -> None:
        thread = _Thread(client, meta["c"], meta.get("t"))
        name, private = await thread.where()
        meta |= {"n": name, "p": private, "u": await thread.link()}
        await show_modal(client, respond, trigger_id, modal(question, answer, meta, _note(private, name)))

    async def show_modal(
        client: AsyncWebClient, respond: AsyncRespond, trigger_id: str, view: dict[str, Any]
    ) -> None:
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:  # e.g. expired_trigger_id: the click took too long to reach us
            log.warning(
                "save form not opened", extra={"event": "curated_modal_failed", "error": describe(exc)}
            )
            await whisper(respond, FORM_FAILED)

    @app.action(SAVE_OFFER)
    async def save_offer(
        ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        val = _read((body.get("actions") or [{}])[0].get("value"))
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        answer_id = str(val.get("a", ""))
        if not await knowledge.may_save_handoff(answer_id, user):
            await whisper(
                respond, "Only the person who resolved this hand-off (or an admin) can save its answer."
            )
            return
        question, _cited = await knowledge.draft(answer_id)
        thread_ts = val.get("t")
        replies = await _Thread(client, channel, thread_ts).human_replies(context.bot_user_id)
        meta = {"a": answer_id, "c": channel, "t": thread_ts}
        await open_modal(client, respond, body.get("trigger_id", ""), question, replies, meta)

    @app.shortcut(SAVE_SHORTCUT)
    async def save_message(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        user = (body.get("user") or {}).get("id", "")
        if not conversation.is_admin(user):
            await whisper(respond, ADMINS_ONLY)
            return
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id", "")
        thread_ts = message.get("thread_ts") or message.get("ts")
        question = ""
        if message.get("thread_ts") and message.get("thread_ts") != message.get("ts"):
            question = await _root_text(client, channel, message["thread_ts"])
        meta = {"c": channel, "t": thread_ts}
        text = mrkdwn_to_plain(message.get("text", ""))
        await open_modal(client, respond, body.get("trigger_id", ""), question, text, meta)

    @app.view(SAVE_VIEW)
    async def submitted(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        question = str(((values.get(QUESTION_BLOCK) or {}).get(FIELD) or {}).get("value") or "").strip()
        answer = str(((values.get(ANSWER_BLOCK) or {}).get(FIELD) or {}).get("value") or "").strip()
        errors = {}
        if not question:
            errors[QUESTION_BLOCK] = "Write the question this answers."
        if not answer:
            errors[ANSWER_BLOCK] = "Write the answer."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        meta = _read(view.get("private_metadata"))
        user = body.get("user") or {}
        channel = str(meta.get("c") or "")
        try:
            if meta.get("k"):
                outcome = await knowledge.edit(
                    str(meta["k"]), user=user.get("id", ""), question=question, answer=answer
                )
            else:
                cited = (await knowledge.draft(str(meta["a"])))[1] if meta.get("a") else []
                outcome = await knowledge.save(
                    question,
                    truncate(answer, MAX_ANSWER_CHARS),
                    author=await _author(client, user),
                    author_id=user.get("id"),
                    platform=PLATFORM,
                    channel=channel,
                    channel_name=str(meta.get("n") or ""),
                    thread_url=str(meta.get("u") or ""),
                    readers=readers_for(PLATFORM, channel, meta.get("p", True) is not False),
                    source_answer_id=str(meta["a"]) if meta.get("a") else None,
                    cited=cited,
                )
        except CuratedError as exc:
            await _tell(client, channel, user.get("id", ""), meta.get("t"), str(exc), None)
            return
        except Exception:  # the query log is down: the person must know it was not saved
            log.exception("saving an answer failed", extra={"event": "curated_save_failed"})
            await _tell(client, channel, user.get("id", ""), meta.get("t"), SAVE_FAILED, None)
            return
        curated_id = outcome.answer.id if outcome.answer is not None else None
        await _tell(client, channel, user.get("id", ""), meta.get("t"), outcome.message, curated_id)

    @app.action(EDIT)
    async def edit(ack: AsyncAck, body: dict, respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        val = _read((body.get("actions") or [{}])[0].get("value"))
        user = (body.get("user") or {}).get("id", "")
        saved = await knowledge.get(str(val.get("k", "")))
        if saved is None:
            await whisper(respond, GONE)
            return
        if not knowledge.can_change(saved, user):
            await whisper(respond, NOT_ALLOWED)
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        thread_ts = (body.get("container") or {}).get("thread_ts")
        meta = {"k": saved.id, "c": channel, "t": thread_ts}
        note = "Saving updates the answer everywhere it is cited."
        view = modal(saved.question, saved.answer, meta, note)
        await show_modal(client, respond, body.get("trigger_id", ""), view)

    @app.action(REMOVE)
    async def remove(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await ack()
        val = _read((body.get("actions") or [{}])[0].get("value"))
        user = (body.get("user") or {}).get("id", "")
        outcome = await knowledge.remove(str(val.get("k", "")), user=user)
        await whisper(respond, outcome.message)


async def _root_text(client: AsyncWebClient, channel: str, thread_ts: str) -> str:
    try:
        resp = await client.conversations_replies(channel=channel, ts=thread_ts, limit=1)
    except SlackApiError:
        return ""
    messages = resp.get("messages") or []
    return mrkdwn_to_plain(messages[0].get("text", "")) if messages else ""


async def _tell(
    client: AsyncWebClient,
    channel: str,
    user: str,
    thread_ts: str | None,
    message: str,
    curated_id: str | None,
) -> None:
    """The outcome of a modal, to its submitter alone, with Edit / Remove under a saved answer."""
    blocks = saved_blocks(message, curated_id) if curated_id else None
    try:
        await client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, text=escape(message), blocks=blocks
        )
    except SlackApiError as exc:
        log.info("save outcome not shown", extra={"event": "curated_told_failed", "error": describe(exc)})
