"""The shared conversation layer's rules that need no chat platform: access, admin check, /resync arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.conversation import Conversation, parse_resync_args
from bot.settings import BotSettings
from rag_core.errors import UserError
from rag_core.kv import MemoryKV
from rag_core.settings import SourceConfig


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
    return Conversation(engine=None, settings=BotSettings(**values), kv=MemoryKV())


def test_channels_see_public_sources_plus_private_ones_allowed_to_them(tmp_path: Path) -> None:
    conv = _conversation(tmp_path)
    # "answers" is the built-in curated-answers source (docs/knowledge.md), public like "wiki".
    assert conv.allowed_sources("CGEN", is_dm=False) == ["wiki", "answers"]
    assert conv.allowed_sources("CHR", is_dm=False) == ["wiki", "hr", "answers"]
    assert conv.allowed_sources("DX", is_dm=True) == ["wiki", "answers"]
    off = _conversation(tmp_path, knowledge_enabled=False)
    assert off.allowed_sources("CGEN", is_dm=False) == ["wiki"]


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
