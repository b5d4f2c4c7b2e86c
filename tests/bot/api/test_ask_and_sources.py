"""/v1/ask (JSON and server-sent events) and /v1/sources over a real server: answers, ACLs, limits, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from rag_core.engine import Engine
from tests.bot.api.conftest import ADMIN, FINANCE, PUBLIC, RunningApi, running_api
from tests.bot.slack.engines import FailingEngine

SSE = {"Accept": "text/event-stream"}


def read_sse(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream, as a browser's EventSource would split them."""
    events: list[tuple[str, dict[str, Any]]] = []
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                events.append((event, json.loads("\n".join(data))))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def test_ask_returns_the_answer_with_citations_and_logs_it(api: RunningApi) -> None:
    with api.client() as http:
        resp = http.post("/v1/ask", json={"question": "How do I reset my VPN?"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "revoke the old key" in body["text"]
    first = body["citations"][0]
    assert first["title"] == "VPN how-to" and first["url"] == "https://drive.example.com/vpn"
    assert first["snippet"] and isinstance(first["score"], float) and first["source"] == "people-drive"
    assert body["abstained"] is False and body["timings_ms"]
    logged = api.feedback.get_answer(body["id"])
    assert logged is not None and logged.platform == "api" and logged.channel == "api:ops"
    assert logged.outcome == "answered"


def test_ask_streams_tokens_as_server_sent_events_ending_with_the_answer(streaming_api: RunningApi) -> None:
    with (
        streaming_api.client() as http,
        http.stream("POST", "/v1/ask", json={"question": "Who gets paged on call?"}, headers=SSE) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = read_sse(resp.iter_lines())
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) >= 2, "the answer should arrive in several token events"
    name, answer = events[-1]
    assert name == "answer"
    assert "".join(tokens) == answer["text"] == "The answer is in the runbook [1]."
    assert answer["citations"] and answer["id"]


def test_ask_sends_the_history_to_the_llm(llm_api: RunningApi, openai_server: Any) -> None:
    history = [
        {"role": "user", "text": "What does the deploy page say?"},
        {"role": "assistant", "text": "Deploys are frozen on Fridays."},
    ]
    with llm_api.client() as http:
        resp = http.post("/v1/ask", json={"question": "And after 3 pm?", "history": history})
    assert resp.status_code == 200, resp.text
    sent = json.dumps(openai_server.behaviour.requests[-1]["body"]["messages"])
    assert "Deploys are frozen on Fridays." in sent and "And after 3 pm?" in sent


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (ADMIN, {"finance-private"}),  # "*": every source, the private one included
        (FINANCE, {"finance-private"}),
        (PUBLIC, {"eng-wiki", "people-drive"}),  # no list: public sources only, never finance-private
    ],
)
def test_sources_only_from_the_tokens_list(api: RunningApi, token: str, expected: set[str]) -> None:
    with api.client(token) as http:
        resp = http.get("/v1/sources", params={"q": "2027 headcount budget for engineering hires", "k": 5})
    assert resp.status_code == 200, resp.text
    seen = {c["source"] for c in resp.json()["citations"]}
    assert seen and seen <= (expected if token != ADMIN else {"finance-private", "eng-wiki", "people-drive"})
    if token == ADMIN:
        assert "finance-private" in seen
    if token == PUBLIC:
        assert "finance-private" not in seen


def test_a_token_never_gets_answers_from_outside_its_sources(api: RunningApi) -> None:
    with api.client(PUBLIC) as http:
        body = http.post("/v1/ask", json={"question": "What is the 2027 headcount budget?"}).json()
    assert "twelve" not in body["text"]
    assert all(c["source"] != "finance-private" for c in body["citations"])
    with api.client(FINANCE) as http:
        body = http.post("/v1/ask", json={"question": "How do I reset my VPN?"}).json()
    assert all(c["source"] == "finance-private" for c in body["citations"])
    assert "WireGuard" not in body["text"]


def test_rate_limit_is_per_token_and_uses_the_shared_limiter(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    with running_api(small_engine, tmp_path, clean_redis, rate_limit_per_minute=2) as api:
        with api.client(PUBLIC) as http:
            codes = [http.post("/v1/ask", json={"question": "VPN reset?"}).status_code for _ in range(3)]
            streamed = http.post("/v1/ask", json={"question": "VPN reset?"}, headers=SSE)
        with api.client(FINANCE) as other:
            assert other.post("/v1/ask", json={"question": "budget?"}).status_code == 200
    assert codes == [200, 200, 429]
    assert streamed.status_code == 429 and streamed.headers["retry-after"] == "60"
    assert "questions in the last minute" in streamed.json()["detail"]
    # The same counter the Slack and Discord adapters use, keyed by platform and user.
    assert int(float(redis.Redis.from_url(clean_redis).get("rate:api:api:intranet") or 0)) == 4


def test_spend_cap_refuses_with_429(small_engine: Engine, tmp_path: Path, clean_redis: str) -> None:
    with running_api(small_engine, tmp_path, clean_redis, daily_spend_cap_usd=0.5) as api:
        from bot.conversation import _utc_day

        api.ctx.conversation.kv.incr(f"spend:{_utc_day()}", 1.0)  # type: ignore[union-attr]
        with api.client() as http:
            resp = http.post("/v1/ask", json={"question": "VPN reset?"})
    assert resp.status_code == 429
    assert "budget is used up" in resp.json()["detail"]


def test_a_failing_engine_gives_503_with_the_sources_found(
    small_engine: Engine, tmp_path: Path, clean_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    with running_api(FailingEngine(small_engine), tmp_path, clean_redis) as api, api.client() as http:
        resp = http.post("/v1/ask", json={"question": "How do I reset my VPN?"})
        with http.stream("POST", "/v1/ask", json={"question": "How do I reset my VPN?"}, headers=SSE) as s:
            events = read_sse(s.iter_lines())
    assert resp.status_code == 503
    body = resp.json()
    assert body["detail"].startswith("Sorry, something went wrong")
    assert body["citations"][0]["title"] == "VPN how-to"
    name, data = events[-1]
    assert name == "error" and data["status"] == 503 and data["citations"]
    assert any(getattr(r, "event", None) == "answer_failed" for r in caplog.records)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"question": ""},
        {"question": "   "},
        {"question": "x" * 5000},
        {"question": "ok", "history": "no"},
    ],
)
def test_bad_questions_get_422_without_echoing_the_body(api: RunningApi, body: dict[str, Any]) -> None:
    with api.client() as http:
        resp = http.post("/v1/ask", json={**body, "secret": "s3cr3t-value"})
    assert resp.status_code == 422
    assert "s3cr3t" not in resp.text and "xxxxx" not in resp.text


def test_sources_needs_a_question(api: RunningApi) -> None:
    with api.client() as http:
        assert http.get("/v1/sources").status_code == 422
        assert http.get("/v1/sources", params={"q": "   "}).status_code == 422


def test_cors_is_off_unless_origins_are_configured(
    small_engine: Engine, tmp_path: Path, clean_redis: str, api: RunningApi
) -> None:
    preflight = {"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=api.url) as http:
        assert "access-control-allow-origin" not in http.options("/v1/ask", headers=preflight).headers
    with (
        running_api(
            small_engine, tmp_path / "cors", clean_redis, api_cors_origins=["https://intranet.example"]
        ) as cors,
        httpx.Client(base_url=cors.url) as http,
    ):
        resp = http.options("/v1/ask", headers=preflight)
        assert resp.headers["access-control-allow-origin"] == "https://intranet.example"
        other = http.options("/v1/ask", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
