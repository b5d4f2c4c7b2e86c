"""`ragbot` command errors are one clear line naming what was wrong; ask and sources work end to end."""

from __future__ import annotations

import logging

import pytest

from bot.cli import main
from rag_core.settings import get_settings
from tests.conftest import _free_port


@pytest.fixture
def env(monkeypatch, tmp_path):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)  # the CLI installs its own handler on captured stderr
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_RERANK_MODEL", "")
    monkeypatch.setenv("RAG_LOG_JSON", "false")
    monkeypatch.delenv("RAG_QDRANT_URL", raising=False)
    monkeypatch.delenv("RAG_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("RAG_OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    root.handlers[:], root.level = saved[0], saved[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_empty_question(env, capsys):
    code, _, err = run(capsys, "ask", "  ")
    assert code == 2 and err.strip().startswith("ragbot: error: the question is empty")
    assert len(err.strip().splitlines()) == 1


def test_unknown_source(env, capsys):
    env.setenv("RAG_SOURCES", '[{"name": "eng-wiki", "kind": "confluence", "path": "/nowhere"}]')
    code, _, err = run(capsys, "ask", "--source", "hr", "How do I expense a dinner?")
    assert code == 2 and "unknown source 'hr'" in err and "eng-wiki" in err


def test_missing_beir_directory(env, capsys, tmp_path):
    code, _, err = run(capsys, "eval", "--beir", str(tmp_path / "no-such-dir"))
    assert code == 2 and "no-such-dir does not exist" in err


def test_unreachable_qdrant_url(env, capsys):
    port = _free_port()
    env.setenv("RAG_QDRANT_URL", f"http://127.0.0.1:{port}")
    code, _, err = run(capsys, "ask", "Where is the on-call runbook?")
    assert code == 3 and f"Qdrant at http://127.0.0.1:{port} is unreachable" in err
    assert "Traceback" not in err


def test_ask_on_an_empty_index_says_to_sync(env, capsys):
    code, _, err = run(capsys, "ask", "Where is the on-call runbook?")
    assert code == 2 and "run `ragbot sync` first" in err


def test_each_error_meaning_has_its_exit_code() -> None:
    from bot.cli import exit_code
    from rag_core.errors import ConfigError, ExportError, RagbotError, StoreUnavailable, UserError

    assert [
        exit_code(e("x")) for e in (UserError, ConfigError, StoreUnavailable, ExportError, RagbotError)
    ] == [
        2,
        2,
        3,
        4,
        1,
    ]
