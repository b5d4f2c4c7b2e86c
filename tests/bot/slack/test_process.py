"""The shared conversation layer's rules that need no chat platform: access, admin check, arguments, history,
and the Slack process's token check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.conversation import Conversation, parse_resync_args
from bot.slack import app as slack_app
from rag_core.errors import UserError
from rag_core.kv import MemoryKV
from rag_core.settings import Settings, SourceConfig, get_settings
from rag_core.tokens import bound_history
from rag_core.types import Turn


def _conversation(tmp_path: Path, **settings) -> Conversation:
    values = dict(
        _env_file=None,
        sources=[
            SourceConfig(name="wiki", kind="confluence", path=tmp_path),
            SourceConfig(name="hr", kind="drive", path=tmp_path, public=False, allowed_channels=["CHR"]),
            SourceConfig(name="legal", kind="drive", path=tmp_path, public=False),
        ],
    )
    values.update(settings)
    return Conversation(engine=None, settings=Settings(**values), kv=MemoryKV())


def test_channels_see_public_sources_plus_private_ones_allowed_to_them(tmp_path: Path) -> None:
    conv = _conversation(tmp_path)
    assert conv.allowed_sources("CGEN", is_dm=False) == ["wiki"]
    assert conv.allowed_sources("CHR", is_dm=False) == ["wiki", "hr"]
    assert conv.allowed_sources("DX", is_dm=True) == ["wiki"]


def test_explicit_channel_and_dm_mappings_win(tmp_path: Path) -> None:
    conv = _conversation(tmp_path, channel_sources={"CLEGAL": ["legal"]}, dm_sources=["wiki", "hr"])
    assert conv.allowed_sources("CLEGAL", is_dm=False) == ["legal"]
    assert conv.allowed_sources("DX", is_dm=True) == ["wiki", "hr"]


def test_no_configured_sources_means_everything(tmp_path: Path) -> None:
    conv = _conversation(tmp_path, sources=[])
    assert conv.allowed_sources("C1", is_dm=False) is None
    assert conv.allowed_sources("D1", is_dm=True) is None


def test_admins_by_user_id_or_discord_role(tmp_path: Path) -> None:
    conv = _conversation(tmp_path, admin_user_ids=["UA"], discord_admin_role="librarians")
    assert conv.is_admin("UA")
    assert conv.is_admin("UB", ["librarians"])
    assert not conv.is_admin("UB", ["everyone"])


def test_resync_arguments() -> None:
    assert parse_resync_args("") == (None, False)
    assert parse_resync_args("wiki --full") == ("wiki", True)
    assert parse_resync_args("--full", ["wiki"]) == (None, True)
    for bad in ("--fast", "a b", '"unclosed'):
        with pytest.raises(UserError, match=r"Usage: /resync \[source\] \[--full\]"):
            parse_resync_args(bad)
    with pytest.raises(UserError, match="Unknown source 'nope'; configured: wiki"):
        parse_resync_args("nope", ["wiki"])


def test_history_keeps_the_most_recent_turns_within_the_token_budget() -> None:
    turns = [Turn("user", "old " * 300), Turn("assistant", "middle answer"), Turn("user", "latest question")]
    assert [t.text for t in bound_history(turns, 50)] == ["middle answer", "latest question"]
    assert bound_history(turns, 0) == []


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
    get_settings.cache_clear()
    try:
        with pytest.raises(UserError, match=f"^{missing} is not set"):
            slack_app.main(http=http)
    finally:
        get_settings.cache_clear()


def test_the_manifest_declares_every_command_event_and_scope_the_app_uses() -> None:
    import yaml

    manifest = yaml.safe_load((Path(slack_app.__file__).parent / "manifest.yaml").read_text())
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert commands == {"/ask", "/sources", "/resync"}
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "reaction_added",
        "reaction_removed",
    }
    # Web API methods the adapter calls → the scopes they need.
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {
        "chat:write",  # chat.postMessage, chat.update
        "reactions:write",  # reactions.add / reactions.remove
        "channels:history",  # conversations.replies
        "commands",
    }
    assert manifest["settings"]["socket_mode_enabled"] is True
