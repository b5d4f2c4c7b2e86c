"""Bad settings through the real `ragbot` command line: one line per bad setting and exit status 2, any command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES_EXAMPLE = (
    """e.g. RAG_SOURCES='[{"name": "wiki", "kind": "confluence", "path": "exports/wiki.zip"}]'"""
)
COMMANDS = [
    ["ask", "how do I get a laptop?"],
    ["sources", "laptop"],
    ["sync"],
    ["slack"],
    ["discord"],
    ["schedule"],
    ["report"],
    ["eval", "--beir", "no-such-dataset"],
    ["demo"],
    ["api"],
]


def ragbot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "SLACK_", "DISCORD_"))}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=clean,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_command_prints_one_line_per_bad_setting_and_exits_2(tmp_path: Path) -> None:
    bad = {"RAG_SOURCES": "", "RAG_TOP_K": "five"}
    procs = [(cmd, ragbot(cmd, bad, tmp_path)) for cmd in COMMANDS]
    for cmd, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, err.splitlines()) == (
            2,
            [
                f"ragbot: error: RAG_SOURCES: is empty; {SOURCES_EXAMPLE}",
                "ragbot: error: RAG_TOP_K: 'five' should be a valid integer; e.g. RAG_TOP_K=5",
            ],
        ), cmd
        assert out == ""


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"RAG_SOURCES": "[{bad"},
            f"RAG_SOURCES: is not valid JSON (Expecting property name enclosed in double quotes); {SOURCES_EXAMPLE}",
        ),
        (
            {"RAG_SOURCES": '[{"name": "w", "kind": "wiki", "path": "/x"}]'},
            f"RAG_SOURCES[0].kind: source 'w' has unknown kind 'wiki' (expected confluence, drive, curated, confluence_api, drive_api or slack_threads); {SOURCES_EXAMPLE}",
        ),
        (
            {"RAG_SOURCES": '[{"name": "w", "kind": "drive"}]'},
            f"RAG_SOURCES[0].path: is required; {SOURCES_EXAMPLE}",
        ),
        (
            {"RAG_LLM_TIMEOUT_S": "soon"},
            "RAG_LLM_TIMEOUT_S: 'soon' should be a valid number; e.g. RAG_LLM_TIMEOUT_S=30.0",
        ),
        (
            {"RAG_LOG_JSON": "maybe"},
            "RAG_LOG_JSON: 'maybe' should be a valid boolean; e.g. RAG_LOG_JSON=true",
        ),
    ],
)
def test_each_kind_of_bad_value_is_one_line(env: dict[str, str], line: str, tmp_path: Path) -> None:
    proc = ragbot(["ask", "hi"], env, tmp_path)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.splitlines()) == (2, [f"ragbot: error: {line}"])


def test_bad_values_in_the_env_file_are_reported_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RAG_CHANNEL_SOURCES={not json\nRAG_RATE_LIMIT_PER_MINUTE=lots\n")
    proc = ragbot(["ask", "hi"], {}, tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.splitlines() == [
        "ragbot: error: RAG_CHANNEL_SOURCES: is not valid JSON (Expecting property name enclosed in double quotes); "
        """e.g. RAG_CHANNEL_SOURCES='{"C0123ABC": ["wiki"]}'""",
        "ragbot: error: RAG_RATE_LIMIT_PER_MINUTE: 'lots' should be a valid integer; e.g. RAG_RATE_LIMIT_PER_MINUTE=6",
    ]
