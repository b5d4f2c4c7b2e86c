"""The settings object and its documentation stay in step."""

from __future__ import annotations

from pathlib import Path

from bot.settings import BotSettings
from rag_core.settings import Settings
from tests.env_example import render

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting_with_its_default():
    assert (ROOT / ".env.example").read_text() == render(), (
        "regenerate: python -m tests.env_example > .env.example"
    )
    text = (ROOT / ".env.example").read_text()
    for name in BotSettings.model_fields:  # the engine's settings and the chat processes' own
        assert f"RAG_{name.upper()}=" in text, name


def test_env_example_loads_to_the_defaults():
    assert BotSettings(_env_file=ROOT / ".env.example") == BotSettings(_env_file=None)


def test_settings_read_env_with_prefix_and_json(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv(
        "RAG_SOURCES", '[{"name": "wiki", "kind": "confluence", "path": "/x", "public": false}]'
    )
    s = Settings(_env_file=None)
    assert s.top_k == 7 and s.sources[0].name == "wiki" and not s.sources[0].public


def test_platform_tokens_keep_their_names_and_stay_out_of_the_engine(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("RAG_DISCORD_TOKEN", "discord-test")
    s = BotSettings(_env_file=None)
    assert s.slack_bot_token.get_secret_value() == "xoxb-test"
    assert s.discord_token.get_secret_value() == "discord-test"
    assert "xoxb-test" not in repr(s) and "discord-test" not in repr(s)
    assert not any(name.startswith(("slack_", "discord_")) for name in Settings.model_fields)
