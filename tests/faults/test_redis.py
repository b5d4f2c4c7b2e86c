"""Redis dies mid-run and comes back: answers continue in-process, one log line, Redis used again at once."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from bot.conversation import Conversation, Question
from rag_core.feedback.http import serve_health
from rag_core.kv import MemoryKV, RedisKV
from tests.faults.conftest import RecordingSink, figure
from tests.faults.parts import RedisProcess, readyz, wait_until
from tests.rag_core.test_engine import engine_like


def ask(conv: Conversation, text: str, user: str = "U1") -> tuple[str, object]:
    sink = RecordingSink()
    asyncio.run(conv.ask(Question("slack", text, user, "C1"), sink))
    return sink.reply


def test_redis_dies_and_comes_back(small_engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisProcess()
    server.start()
    try:
        kv = RedisKV(server.url, MemoryKV())
        engine = engine_like(small_engine, tmp_path, kv=kv, redis_url=server.url)
        conv = Conversation(engine, engine.settings, kv)
        health = serve_health(0, engine, kv, host="127.0.0.1")
        assert ask(conv, "How do I connect to the VPN?")[0] == "finished"
        assert readyz(health.url) == 200
        assert server.client().keys("rate:*") and server.client().keys("ragbot:answer:*")

        server.kill()
        with caplog.at_level(logging.INFO, logger="rag_core.kv"):
            started = time.monotonic()
            replies = [ask(conv, q) for q in ("How do I reset my VPN?", "Who pays for team dinners?")]
            degraded_s = (time.monotonic() - started) / 2
            assert [kind for kind, _ in replies] == ["finished", "finished"]
            assert ask(conv, "How do I reset my VPN?")[1].cache_hit  # the in-process cache took over
            assert conv.first_delivery("slack", "Ev1") and not conv.first_delivery(
                "slack", "Ev1"
            )  # dedupe too
            for _ in range(engine.settings.rate_limit_per_minute):
                ask(conv, "Who pays for team dinners?", user="U2")
            assert ask(conv, "Who pays for team dinners?", user="U2")[0] == "refused"  # rate limits too
            assert readyz(health.url) == 503  # degraded: answers go on, but the probe says Redis is gone

            server.start()  # an empty Redis on the same port (no persistence), as after a restart
            back = time.monotonic()
            recovery_s = wait_until(
                lambda: (
                    conv.first_delivery("slack", f"probe-{time.monotonic()}")
                    and bool(server.client().keys("dedupe:slack:probe-*"))
                )
            )
            assert ask(conv, "How do I connect to the VPN?", user="U3")[0] == "finished"
            assert server.client().keys("rate:slack:U3")  # used again, not only probed
            assert readyz(health.url) == 200
        down = [r for r in caplog.records if r.__dict__.get("event") == "redis_down"]
        up = [r for r in caplog.records if r.__dict__.get("event") == "redis_up"]
        assert len(down) == 1 and len(up) == 1  # logged once each way, not once per call
        figure("redis down", "answer time while Redis is down (per question)", degraded_s)
        figure("redis down", "Redis used again after it answers", recovery_s)
        figure("redis down", "restart to first answer using Redis", time.monotonic() - back)
        health.stop()
        engine.close()
    finally:
        server.kill()
