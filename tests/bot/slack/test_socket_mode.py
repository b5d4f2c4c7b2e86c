"""Socket Mode: the real slack_sdk Socket Mode client connects to the local server and receives envelopes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from tests.bot.slack.conftest import SlackBot
from tests.bot.slack.fake_slack import event_callback, mention, slash


@pytest.fixture
async def socket_bot(bot: SlackBot) -> AsyncIterator[SlackBot]:
    handler = AsyncSocketModeHandler(bot.app, "xapp-test")
    await handler.connect_async()
    await bot.fake.wait_connected()
    try:
        yield bot
    finally:
        await handler.close_async()


async def test_mention_over_socket_mode_is_acked_and_answered(socket_bot: SlackBot) -> None:
    fake = socket_bot.fake
    [opened] = fake.calls_to("apps.connections.open")
    envelope = await fake.send_envelope(
        "events_api",
        event_callback(mention("How do I deploy to production?", ts="100.000100")),
    )
    await fake.wait_for(lambda: envelope.acked_at)
    assert envelope.acked_at - envelope.sent_at < 3
    [final] = await fake.wait_for(
        lambda: [c for c in fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")]
    )
    assert "<https://wiki.example.com/deploy|Deploying to production>" in json.dumps(final.params["blocks"])
    assert fake.calls_to("reactions.add", timestamp="100.000100")


async def test_redelivered_envelope_is_acked_but_answered_once(socket_bot: SlackBot) -> None:
    fake = socket_bot.fake
    body = event_callback(mention("How do I reset my VPN?", ts="101.000100"))
    first = await fake.send_envelope("events_api", body)
    retry = await fake.send_envelope("events_api", body, retry_attempt=1)
    await fake.wait_for(lambda: first.acked_at and retry.acked_at)
    await fake.wait_for(
        lambda: [c for c in fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")]
    )
    assert len(fake.calls_to("chat.postMessage", channel="C1")) == 1


async def test_slash_commands_over_socket_mode(socket_bot: SlackBot) -> None:
    fake = socket_bot.fake
    ask = await fake.send_envelope(
        "slash_commands", slash("/ask", "Who gets paged when on call?", response_url=fake.response_url("ask"))
    )
    await fake.wait_for(lambda: ask.acked_at)
    assert ask.acked_at - ask.sent_at < 3
    assert "Searching" in ask.ack_payload["text"]
    [answer] = await fake.wait_for(lambda: fake.calls_to("respond", name="ask"))
    assert "wiki.example.com/oncall" in json.dumps(answer.params["blocks"])

    sources = await fake.send_envelope(
        "slash_commands",
        slash("/sources", "team dinner reimbursement", response_url=fake.response_url("src")),
    )
    await fake.wait_for(lambda: sources.acked_at)
    [listing] = await fake.wait_for(lambda: fake.calls_to("respond", name="src"))
    assert "<https://drive.example.com/expenses|Expenses policy>" in json.dumps(listing.params["blocks"])

    refused = await fake.send_envelope(
        "slash_commands", slash("/resync", "", response_url=fake.response_url("rs"))
    )
    await fake.wait_for(lambda: refused.acked_at)
    assert "only ragbot admins" in refused.ack_payload["text"]
