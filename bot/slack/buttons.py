"""Block Kit buttons ragbot puts under answers and sources; `bot.slack.interactions` handles their clicks.

Every button's value is a small JSON object: "a" the answer id, "t" the thread to post into (when known), or for
documents "s"/"d"/"n" source, document id and title.
"""

from __future__ import annotations

import json
from typing import Any

from bot.slack.mrkdwn import escape, truncate

VOTE_UP = "ragbot_vote_up"
VOTE_DOWN = "ragbot_vote_down"
ESCALATE = "ragbot_escalate"
ESCALATE_AGAIN = "ragbot_escalate_again"
RESOLVE = "ragbot_resolve"
SHARE = "ragbot_share"
DISMISS = "ragbot_dismiss"
HIDE = "ragbot_hide"
UNHIDE = "ragbot_unhide"
ESCALATE_LABEL = "Get help from a person"
BUTTON_VALUE_LIMIT = 2000  # Slack's limit on a button value

Block = dict[str, Any]


def value(**fields: Any) -> str:
    return json.dumps({k: v for k, v in fields.items() if v is not None}, separators=(",", ":"))


def read_value(raw: object) -> dict[str, str]:
    """A button's value; {} for anything that is not ours, e.g. a field that is not a string (never raises on a
    forged or out-of-date payload)."""
    return read_json(raw, (str,))


def read_json(raw: object, kinds: tuple[type, ...]) -> dict[str, Any]:
    """A JSON object of ours (button value, view metadata) whose every field is one of `kinds`; {} otherwise."""
    if not isinstance(raw, str):
        return {}
    try:
        data = json.loads(raw or "")
    except ValueError:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, kinds) for v in data.values()):
        return {}
    return data


def button(text: str, action_id: str, val: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": val,
    }
    if style:
        b["style"] = style
    return b


def answer_actions(answer_id: str, *, abstained: bool, thread_ts: str | None = None) -> Block:
    """Under a public answer: 👍 / 👎 (besides reactions) and the hand-off; an "I don't know" gets the hand-off."""
    v = value(a=answer_id, t=thread_ts)
    elements = [] if abstained else [button(":+1:", VOTE_UP, v), button(":-1:", VOTE_DOWN, v)]
    elements.append(button(ESCALATE_LABEL, ESCALATE, v))
    return {"type": "actions", "block_id": f"ragbot_answer_{answer_id}", "elements": elements}


def private_actions(answer_id: str, thread_ts: str | None) -> Block:
    """Under an answer only the asker sees: share it in the thread, dismiss it, or ask a person."""
    v = value(a=answer_id, t=thread_ts)
    return {
        "type": "actions",
        "block_id": f"ragbot_private_{answer_id}",
        "elements": [
            button("Share in thread", SHARE, v, "primary"),
            button("Dismiss", DISMISS, v),
            button(ESCALATE_LABEL, ESCALATE, v),
        ],
    }


def escalate_again_actions(answer_id: str, thread_ts: str | None) -> Block:
    """Offered when a hand-off was resolved and the asker presses "Get help" again."""
    return {
        "type": "actions",
        "block_id": f"ragbot_again_{answer_id}",
        "elements": [
            button("Ask a person again", ESCALATE_AGAIN, value(a=answer_id, t=thread_ts), "primary")
        ],
    }


def resolve_actions(answer_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"ragbot_escalation_{answer_id}",
        "elements": [button("Resolved", RESOLVE, value(a=answer_id), "primary")],
    }


def document_button(source: str, doc_id: str, title: str, *, hidden: bool) -> dict[str, Any] | None:
    """ "Hide" (or "Unhide") for an admin; None when the ids do not fit in a button value."""
    v = value(s=source, d=doc_id, n=truncate(title, 200))
    if len(v) > BUTTON_VALUE_LIMIT:
        return None
    return button("Unhide" if hidden else "Hide", UNHIDE if hidden else HIDE, v, None if hidden else "danger")


def escalation_text(targets: list[str], asker: str, question: str) -> str:
    """`<@U1> <!subteam^S1>, <@asker> would like a person's help with: > question`."""
    return (
        f"{' '.join(mention(t) for t in targets)}, <@{asker}> would like a person's help with:\n"
        f"> {escape(truncate(' '.join(question.split()), 500))}"
    )


def mention(target: str) -> str:
    """A Slack user (U…/W…) or user group (S…) id as a mention that notifies."""
    return f"<!subteam^{target}>" if target.startswith("S") else f"<@{target}>"
