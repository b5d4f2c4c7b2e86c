"""Terminal questions answered by the running bot over loopback: what the terminal sees, also when it fails."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import rag_core.feedback.http as http
from bot import local
from rag_core.errors import StoreUnavailable, UserError
from rag_core.feedback.http import HealthServer, serve_health

TOKEN = "run-file-secret"


@pytest.fixture
def bot_port(small_engine: Any) -> Iterator[int]:
    server: HealthServer = serve_health(
        0, small_engine, host="127.0.0.1", local=local.local_routes(small_engine, TOKEN)
    )
    try:
        yield server.port
    finally:
        server.stop()


def test_ask_streams_tokens_then_the_answer(bot_port: int) -> None:
    tokens: list[str] = []
    answer = local.ask(bot_port, "How do I deploy to production?", None, tokens.append, TOKEN)
    assert "".join(tokens) == answer.text
    assert answer.citations[0].title == "Deploying to production"


def test_sources_and_source_filter(bot_port: int) -> None:
    citations = local.sources(bot_port, "team dinner limit", ["people-drive"], TOKEN)
    assert citations and {c.source for c in citations} == {"people-drive"}


def test_bad_question_is_one_line_from_the_bot(bot_port: int) -> None:
    with pytest.raises(UserError, match="the question is empty"):
        local.ask(bot_port, "   ", None, lambda _: None, TOKEN)


def test_non_json_body_is_a_400(bot_port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{bot_port}/local/ask", data=b"[1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400 and json.loads(caught.value.read())["error"]


@pytest.mark.parametrize("token", ["", "guessed"])
def test_loopback_callers_without_the_run_file_token_are_refused(bot_port: int, token: str) -> None:
    """The loopback routes answer as the operator (every document): a caller that merely comes from 127.0.0.1 —
    a sidecar proxy in front of the one HTTP port, another user on the machine — gets nothing without the token
    only the bot's run file (data dir, mode 0600) holds."""
    tokens: list[str] = []
    with pytest.raises(UserError, match="not authorised"):
        local.ask(bot_port, "What is the 2027 headcount budget?", None, tokens.append, token)
    with pytest.raises(UserError, match="not authorised"):
        local.sources(bot_port, "headcount budget", None, token)
    assert tokens == []


def test_the_run_file_holds_port_and_token_for_its_owner_only(tmp_path) -> None:
    from bot.runtime import _write_run_file
    from bot.settings import BotSettings

    settings = BotSettings(_env_file=None, data_dir=tmp_path)
    _write_run_file(settings, 8123, TOKEN)
    path = tmp_path / local.RUN_FILE
    assert json.loads(path.read_text())["local_token"] == TOKEN
    assert path.stat().st_mode & 0o077 == 0
    assert local.run_token(settings) == TOKEN


def test_callers_off_this_machine_are_refused(bot_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_LOOPBACK", set())  # as if the request came from the network
    with pytest.raises(StoreUnavailable, match="answered HTTP 403"):
        local.ask(bot_port, "How do I deploy?", None, lambda _: None, TOKEN)


def test_an_engine_failure_is_logged_and_shown_as_one_line(
    small_engine: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("store went away")

    server = serve_health(0, small_engine, host="127.0.0.1", local={"/local/sources": broken})
    try:
        with pytest.raises(UserError, match="the running bot failed to answer"):
            local.sources(server.port, "anything", None)
    finally:
        server.stop()
    assert any(getattr(r, "event", "") == "local_request_failed" for r in caplog.records)


def test_nobody_listening_is_one_clear_line() -> None:
    with pytest.raises(
        StoreUnavailable, match="held by another process, and asking it on 127.0.0.1:9 failed"
    ):
        local.sources(9, "anything", None)
