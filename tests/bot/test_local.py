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


@pytest.fixture
def bot_port(small_engine: Any) -> Iterator[int]:
    server: HealthServer = serve_health(
        0, small_engine, host="127.0.0.1", local=local.local_routes(small_engine)
    )
    try:
        yield server.port
    finally:
        server.stop()


def test_ask_streams_tokens_then_the_answer(bot_port: int) -> None:
    tokens: list[str] = []
    answer = local.ask(bot_port, "How do I deploy to production?", None, tokens.append)
    assert "".join(tokens) == answer.text
    assert answer.citations[0].title == "Deploying to production"


def test_sources_and_source_filter(bot_port: int) -> None:
    citations = local.sources(bot_port, "team dinner limit", ["people-drive"])
    assert citations and {c.source for c in citations} == {"people-drive"}


def test_bad_question_is_one_line_from_the_bot(bot_port: int) -> None:
    with pytest.raises(UserError, match="the question is empty"):
        local.ask(bot_port, "   ", None, lambda _: None)


def test_non_json_body_is_a_400(bot_port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{bot_port}/local/ask", data=b"[1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400 and json.loads(caught.value.read())["error"]


def test_callers_off_this_machine_are_refused(bot_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_LOOPBACK", set())  # as if the request came from the network
    with pytest.raises(StoreUnavailable, match="answered HTTP 403"):
        local.ask(bot_port, "How do I deploy?", None, lambda _: None)


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
