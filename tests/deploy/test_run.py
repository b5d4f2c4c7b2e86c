"""`ragbot run` end to end: one process against the local Slack server, with the schedule syncing the samples.

The bot is a real subprocess (`python -m bot.cli run`) with the real Bolt app and Socket Mode client; only Slack's
servers are replaced (tests/bot/slack/fake_slack.py). While it runs, a terminal `ragbot ask` is answered by it,
and a second `ragbot run` on the same embedded index fails with one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.slack.fake_slack import FakeSlack, event_callback, mention

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, api_url: str, http_port: int) -> dict[str, str]:
    sources = [
        {"name": "eng-wiki", "kind": "confluence", "path": str(ROOT / "samples" / "confluence-eng")},
        {"name": "people-drive", "kind": "drive", "path": str(ROOT / "samples" / "drive-people")},
    ]
    for source in sources:
        source["interval_minutes"] = 60  # never synced: the schedule runs it at start
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "SLACK_", "DISCORD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_APP_TOKEN="xapp-test",
        RAG_SLACK_API_URL=api_url,
        RAG_DATA_DIR=str(data_dir),
        RAG_HTTP_PORT=str(http_port),
        RAG_SOURCES=json.dumps(sources),
        RAG_LOG_JSON="true",
    )
    return env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _until(check: Any, timeout: float, what: str, proc: subprocess.Popen) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ragbot run exited ({proc.returncode}) while waiting for {what}")
        try:
            result = await asyncio.to_thread(check)
        except OSError:
            result = None
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack().start()
    try:
        yield slack
    finally:
        await slack.stop()


async def test_run_serves_slack_schedule_health_and_the_terminal(fake: FakeSlack, tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path / "data", fake.api_url, port)
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        await fake.wait_for(lambda: fake._ws, timeout=120)  # Socket Mode connected to the local Slack
        health = f"http://127.0.0.1:{port}"
        assert _get(f"{health}/healthz")[0] == 200
        await _until(lambda: _get(f"{health}/readyz")[0] == 200, 60, "/readyz", proc)
        # the schedule's first run (sources never synced) indexes the samples; the sync metric says so
        await _until(
            lambda: (
                'ragbot_sync_last_success_timestamp_seconds{source="people-drive"}'
                in _get(f"{health}/metrics")[1]
            ),
            120,
            "the scheduled sync",
            proc,
        )

        envelope = await fake.send_envelope(
            "events_api", event_callback(mention("What is the limit for a team dinner?", ts="200.000100"))
        )
        [final] = await fake.wait_for(
            lambda: [c for c in fake.calls_to("chat.update", channel="C1") if c.params.get("blocks")],
            timeout=60,
        )
        assert envelope.acked_at is not None
        assert "Expenses policy" in json.dumps(final.params["blocks"])

        # a terminal `ragbot ask` while the bot holds the index: answered by the running process
        started = time.monotonic()
        ask = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.cli", "ask", "How do I get paged when I'm on call?"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(f"terminal ask through the running bot: {time.monotonic() - started:.1f} s")
        assert ask.returncode == 0, ask.stderr
        assert "On-call runbook" in ask.stdout and "Sources:" in ask.stdout

        # a second bot process on the same embedded index: one clear line, no traceback
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=tmp_path,
            env={**env, "RAG_HTTP_PORT": str(_free_port())},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 3  # StoreUnavailable's exit code
        assert second.stderr.strip().splitlines()[-1].startswith("ragbot: error: embedded index at")
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        output = log_path.read_text()
    assert code == 0, output[-2000:]
    assert '"event": "bot_start"' in output and "slack-socket" in output
    assert not (tmp_path / "data" / "ragbot.run.json").exists()  # removed on the way out


def _settings(**values: Any) -> Any:
    from bot.settings import BotSettings

    return BotSettings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("values", "services"),
    [
        ({"slack_bot_token": "xoxb", "slack_app_token": "xapp"}, ["slack-socket"]),
        ({"slack_bot_token": "xoxb", "slack_signing_secret": "s"}, ["slack-http"]),
        (
            {"slack_bot_token": "xoxb", "slack_app_token": "xapp", "discord_token": "d"},
            ["slack-socket", "discord"],
        ),
        ({"discord_token": "d"}, ["discord"]),
    ],
)
def test_run_starts_the_adapters_whose_tokens_are_set(values: dict[str, str], services: list[str]) -> None:
    from bot.services import configured_services

    assert [s.name for s in configured_services(_settings(**values))] == services


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "nothing to run: set SLACK_BOT_TOKEN"),
        ({"slack_bot_token": "xoxb"}, "neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET"),
        ({"slack_bot_token": "  ", "discord_token": ""}, "nothing to run"),
    ],
)
def test_run_with_missing_tokens_fails_in_one_line_before_loading_models(
    values: dict[str, str], message: str
) -> None:
    from bot.services import configured_services
    from rag_core.errors import UserError

    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        configured_services(_settings(**values))
