"""Who reads an answer decides what it may cite, on every path: 200 questions generated from a restricted page,
through the conversation layer each adapter calls, leak nothing to anyone the page does not name.

The 200 go through `Conversation.ask` / `Conversation.sources` (the functions the Slack, Discord and API adapters
call, with the identities those adapters register, Slack's against the local Slack server) with each path's
`Question` built as its adapter builds it; tests/bot/slack, tests/bot/discord and tests/bot/api send a handful
end to end through the real adapters. The engine is real (embedded qdrant-edge, real models, no LLM, its answer
cache on, filled by Alice's private answers first); query embeddings are computed once per question
(tests/bot/conftest.py), as only the audience differs between paths.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.api.context import TokenIdentity
from bot.api.settings import conversation_settings, load_tokens
from bot.conversation import Conversation, Question
from bot.discord.identity import DiscordIdentity
from bot.identity import asker_audience, channel_audience, groups_of
from bot.settings import BotSettings
from bot.slack.identity import SlackIdentity
from rag_core.kv import MemoryKV
from rag_core.permissions import Audience
from rag_core.types import Answer, Citation
from tests.bot.restricted import ALICE, FALCON_ID, HOLD_ID, LEGAL, generated_questions, leaks
from tests.bot.slack.fake_slack import FakeSlack

PLAIN_TOKEN = "plain-token-0123456789abcdef"  # no principals
ALICE_TOKEN = "alice-token-0123456789abcdef"  # Alice's principal
DISCORD_ALICE = "4242"  # a Discord user id mapped to Alice


@dataclass
class Collect:
    """An answer sink that keeps what it was given."""

    answers: list[Answer] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    async def started(self) -> None:
        pass

    async def update(self, partial_text: str) -> None:
        pass

    async def finished(self, answer: Answer) -> str | None:
        self.answers.append(answer)
        return None

    async def refused(self, message: str) -> None:
        self.said.append(message)

    async def failed(self, message: str, citations: list[Citation]) -> None:
        self.said.append(message)


def settings_for(tmp_path: Path, **overrides: Any) -> BotSettings:
    values: dict[str, Any] = dict(
        _env_file=None,
        data_dir=tmp_path,
        rate_limit_per_minute=0,
        daily_spend_cap_usd=0,
        log_json=False,
        api_tokens=json.dumps(
            {
                PLAIN_TOKEN: {"name": "intranet"},
                ALICE_TOKEN: {"name": "alice-scripts", "principals": ["alice@example.com"]},
            }
        ),
        discord_principals={DISCORD_ALICE: [ALICE]},
    )
    values.update(overrides)
    return BotSettings(**values)


@pytest.fixture
async def layer(restricted_engine: Any, tmp_path: Path) -> AsyncIterator[tuple[Conversation, FakeSlack]]:
    """One conversation with the identities the three adapters register (Slack's over the local Slack)."""
    fake = await FakeSlack().start()
    fake.users = {"UALICE": {"email": "Alice@Example.com"}, "UBOB": {"email": "bob@example.com"}}
    settings = settings_for(tmp_path)
    tokens = load_tokens(settings)
    conversation = Conversation(restricted_engine, conversation_settings(settings, tokens), MemoryKV())
    assert isinstance(conversation.settings, BotSettings)
    conversation.identities = {
        "slack": SlackIdentity(AsyncWebClient(token="xoxb-test", base_url=fake.api_url), settings),
        "discord": DiscordIdentity(settings),
        "api": TokenIdentity(tokens),
    }
    try:
        yield conversation, fake
    finally:
        await fake.stop()


# Each path: the Question its adapter builds, and whether it asks for an answer or for sources.
SLACK_CHANNEL = dict(platform="slack", user_id="UALICE", channel_id="C1")  # Alice, but everyone reads it
LEAK_PATHS: dict[str, tuple[dict[str, Any], str]] = {
    "slack mention in a channel (Alice asks)": (SLACK_CHANNEL, "ask"),
    "slack answer channel (Alice asks)": (dict(SLACK_CHANNEL, channel_id="CANS"), "ask"),
    "slack DM (Bob)": (dict(platform="slack", user_id="UBOB", channel_id="D2", is_dm=True), "ask"),
    "slack /ask (Bob)": (dict(platform="slack", user_id="UBOB", channel_id="C1", asker_only=True), "ask"),
    "slack /sources (Bob)": (
        dict(platform="slack", user_id="UBOB", channel_id="C1", asker_only=True),
        "sources",
    ),
    "slack DM (unknown to Slack)": (
        dict(platform="slack", user_id="UGHOST", channel_id="D3", is_dm=True),
        "ask",
    ),
    "discord mention in a channel (Alice asks)": (
        dict(platform="discord", user_id=DISCORD_ALICE, channel_id="900"),
        "ask",
    ),
    "discord DM (unmapped)": (dict(platform="discord", user_id="777", channel_id="901", is_dm=True), "ask"),
    "discord /ask (unmapped)": (
        dict(platform="discord", user_id="777", channel_id="900", asker_only=True),
        "ask",
    ),
    "discord /sources (unmapped)": (
        dict(platform="discord", user_id="777", channel_id="900", asker_only=True),
        "sources",
    ),
    "api /v1/ask and chat completions (token without principals)": (
        dict(platform="api", user_id="api:intranet", channel_id="api:intranet", asker_only=True),
        "ask",
    ),
    "api /v1/sources (token without principals)": (
        dict(platform="api", user_id="api:intranet", channel_id="api:intranet", asker_only=True),
        "sources",
    ),
}
# The same questions where Alice alone reads the reply: the page must be found (the questions are on topic).
ALICE_PATHS: dict[str, tuple[dict[str, Any], str]] = {
    "slack DM (Alice)": (dict(platform="slack", user_id="UALICE", channel_id="D1", is_dm=True), "ask"),
    "discord /sources (Alice)": (
        dict(platform="discord", user_id=DISCORD_ALICE, channel_id="900", asker_only=True),
        "sources",
    ),
    "api /v1/ask (Alice's token)": (
        dict(platform="api", user_id="api:alice-scripts", channel_id="api:alice-scripts", asker_only=True),
        "ask",
    ),
}


async def _reply(
    conversation: Conversation, fields: dict[str, Any], op: str, text: str
) -> tuple[str, list[Any]]:
    q = Question(text=text, **fields)
    if op == "sources":
        return "", await conversation.sources(q)
    sink = Collect()
    await conversation.ask(q, sink)
    assert sink.answers and not sink.said, sink.said
    return sink.answers[0].text, sink.answers[0].citations


async def test_200_generated_questions_leak_nothing_on_any_path(
    layer: tuple[Conversation, FakeSlack],
) -> None:
    conversation, fake = layer
    questions = generated_questions()
    assert len(questions) == 200
    # Alice first, privately: the page is found (the questions are on topic), and her answers are in the answer
    # cache before anyone else asks the same questions, whose cache key must differ by audience.
    for name, (fields, op) in ALICE_PATHS.items():
        found = 0
        for text in questions[:40]:  # the page's sentences first: every phrasing family is represented
            _reply_text, citations = await _reply(conversation, fields, op, text)
            found += any(c.doc_id == FALCON_ID for c in citations)
        assert found >= 30, f"{name}: the page was cited for only {found} of 40 questions about it"

    leaked: dict[str, list[tuple[str, list[str]]]] = {}
    for name, (fields, op) in LEAK_PATHS.items():
        for text in questions:
            reply, citations = await _reply(conversation, fields, op, text)
            if found := leaks(reply, citations):
                leaked.setdefault(name, []).append((text, found))
    assert leaked == {}, {k: (len(v), v[:3]) for k, v in leaked.items()}
    # users.info once per person (cached), never per question
    assert len(fake.calls_to("users.info", user="UALICE")) == 1


async def test_a_channel_reads_what_an_admin_maps_to_it_and_groups_come_from_settings(
    restricted_engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path,
        channel_principals={"CLEGAL": ["group:legal"]},
        principal_groups={"legal": ["carol@example.com", "UDAVE"]},
    )
    assert settings.channel_principals == {"CLEGAL": [LEGAL]}
    assert channel_audience(settings, "CLEGAL") == Audience.of({LEGAL})
    assert channel_audience(settings, "C1") == Audience.public()
    assert groups_of(["CAROL@example.com"], settings.principal_groups) == {LEGAL}

    conversation = Conversation(restricted_engine, settings, MemoryKV())
    conversation.identities = {"discord": DiscordIdentity(settings)}
    question = "How long must we preserve emails for the lawsuit?"
    in_legal = Collect()
    await conversation.ask(Question("slack", question, "UERIN", "CLEGAL"), in_legal)
    assert HOLD_ID in [c.doc_id for c in in_legal.answers[0].citations]
    elsewhere = Collect()
    await conversation.ask(Question("slack", question, "UERIN", "C1"), elsewhere)
    assert leaks(elsewhere.answers[0].text, elsewhere.answers[0].citations) == []

    # Dave is in `legal` by his platform id, Carol by the email mapped to her Discord account.
    settings.discord_principals = {"55": ["user:carol@example.com"]}
    dave = await asker_audience(
        conversation.identities["discord"], Question("discord", question, "UDAVE", "9", is_dm=True), settings
    )
    carol = await asker_audience(
        DiscordIdentity(settings), Question("discord", question, "55", "9", is_dm=True), settings
    )
    assert dave.may_read([LEGAL]) and carol.may_read([LEGAL]) and not carol.may_read([ALICE])


async def test_discord_roles_map_to_principals(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, discord_principals={"&31": ["group:legal"], "32": ["bob@example.com"]})
    identity = DiscordIdentity(settings)
    member = Question("discord", "q", "32", "9", role_ids=["31", "99"], asker_only=True)
    assert await identity.principals(member) == {LEGAL, "user:bob@example.com"}
    assert await identity.principals(Question("discord", "q", "1", "9")) == frozenset()


async def test_an_identity_that_breaks_means_public_documents_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def principals(self, q: Question) -> frozenset[str] | None:
            raise RuntimeError("directory down")

    caplog.set_level(logging.WARNING)
    audience = await asker_audience(
        Broken(), Question("slack", "q", "U1", "D1", is_dm=True), settings_for(tmp_path)
    )
    assert audience == Audience.public()
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["identity_failed"]  # type: ignore[attr-defined]
