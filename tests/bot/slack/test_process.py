"""The Slack process's token check and its app manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import get_bot_settings
from bot.slack import app as slack_app
from connectors.slack_threads.events import CHANNEL_EVENTS
from rag_core.errors import UserError


@pytest.mark.parametrize(
    ("http", "env", "missing"),
    [
        (False, {}, "SLACK_BOT_TOKEN"),
        (False, {"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
        (True, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "SLACK_SIGNING_SECRET"),
    ],
)
def test_main_names_the_missing_token(
    monkeypatch, tmp_path: Path, http: bool, env: dict, missing: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"RAG_{name}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_bot_settings.cache_clear()
    try:
        with pytest.raises(UserError, match=f"^{missing} is not set"):
            slack_app.main(http=http)
    finally:
        get_bot_settings.cache_clear()


def test_the_manifest_declares_every_command_event_and_scope_the_app_uses() -> None:
    import yaml

    manifest = yaml.safe_load((Path(slack_app.__file__).parent / "manifest.yaml").read_text())
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert commands == {"/ask", "/sources", "/resync"}
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "message.channels",  # answer channels, and a slack_threads source's messages
        "message.groups",
        "reaction_added",
        "reaction_removed",
        *CHANNEL_EVENTS,  # every channel event a slack_threads source takes as a hint
    }
    # Web API methods the adapter calls → the scopes they need.
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {
        "chat:write",  # chat.postMessage, chat.update
        "reactions:write",  # reactions.add / reactions.remove
        "channels:history",  # conversations.replies
        "commands",
    }
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {
        "channels:read",  # channel_rename, _archive, _unarchive, _deleted
        "groups:read",  # ...of private channels
        "groups:history",  # group_history_changed, message.groups
    }
    assert manifest["settings"]["socket_mode_enabled"] is True
