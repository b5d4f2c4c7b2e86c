"""Resident memory of `ragbot run`: the figure the Kubernetes requests and limits are sized from.

Starts `python -m bot.cli run` in Socket Mode against the local Slack test server (tests/bot/slack/fake_slack.py)
with the bundled samples as sources (the schedule syncs them at start), sends N mentions, and prints VmRSS after
start-up, after the sync and after the answers, and the peak (VmHWM).

    .venv/bin/python benchmarks/run_memory.py [--questions 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.cli_engine import demo_questions  # noqa: E402
from tests.bot.slack.fake_slack import FakeSlack, event_callback, mention  # noqa: E402

QUESTIONS = demo_questions()  # samples/README.md: two answered, one "I don't know"


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(questions: int) -> None:
    fake = await FakeSlack().start()
    port = free_port()
    sources = [
        {
            "name": "eng-wiki",
            "kind": "confluence",
            "path": str(ROOT / "samples/confluence-eng"),
            "interval_minutes": 60,
        },
        {
            "name": "people-drive",
            "kind": "drive",
            "path": str(ROOT / "samples/drive-people"),
            "interval_minutes": 60,
        },
    ]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "SLACK_", "DISCORD_"))},
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_APP_TOKEN": "xapp-bench",
            "RAG_SLACK_API_URL": fake.api_url,
            "RAG_DATA_DIR": tmp,
            "RAG_HTTP_PORT": str(port),
            "RAG_SOURCES": json.dumps(sources),
            "RAG_RATE_LIMIT_PER_MINUTE": "1000",
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await fake.wait_for(lambda: fake._ws, timeout=300)
            print(f"connected after {time.monotonic() - started:.1f} s: {memory_mb(proc.pid)}")
            metrics = f"http://127.0.0.1:{port}/metrics"
            while 'ragbot_sync_last_success_timestamp_seconds{source="people-drive"}' not in (
                await asyncio.to_thread(lambda: urllib.request.urlopen(metrics).read().decode())
            ):
                await asyncio.sleep(0.5)
            print(f"samples synced after {time.monotonic() - started:.1f} s: {memory_mb(proc.pid)}")
            for i in range(questions):
                await fake.send_envelope(
                    "events_api",
                    event_callback(
                        mention(
                            QUESTIONS[i % len(QUESTIONS)] + f" ({i})", ts=f"{300 + i}.000100", user=f"U{i}"
                        )
                    ),
                )
            await fake.wait_for(
                lambda: len([c for c in fake.calls_to("chat.update") if c.params.get("blocks")]) >= questions,
                timeout=600,
            )
            mem = memory_mb(proc.pid)
            print(
                f"{questions} mentions answered: VmRSS {mem['VmRSS']:.0f} MB, peak VmHWM {mem['VmHWM']:.0f} MB"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=50)
    asyncio.run(main(parser.parse_args().questions))
