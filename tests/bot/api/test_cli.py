"""`ragbot api` refuses to start with one clear line when its tokens are missing or wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [(None, "RAG_API_TOKENS is not set")],  # bad JSON and the rest: test_auth_limits_feedback, in-process
)
def test_ragbot_api_without_good_tokens_exits_with_one_line(
    tmp_path: Path, tokens: str | None, message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"PYTHONPATH": str(ROOT), "RAG_DATA_DIR": str(tmp_path), "RAG_LOG_JSON": "false"}
    if tokens is not None:
        env["RAG_API_TOKENS"] = tokens
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "api", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ragbot: error: {done.stderr.split('error: ', 1)[1].strip()}"
    ]
    assert message in done.stderr and "Traceback" not in done.stderr
