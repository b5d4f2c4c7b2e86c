"""Bearer auth (401/403), the body cap (413), votes through the shared query log, and admin-only resync."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.api.server import bind
from bot.api.settings import load_tokens
from rag_core.errors import UserError
from tests.bot.api.conftest import ADMIN, FINANCE, PUBLIC, TOKENS, RunningApi, api_settings

ENDPOINTS = [
    ("POST", "/v1/ask", {"question": "VPN?"}),
    ("GET", "/v1/sources?q=VPN", None),
    ("POST", "/v1/answers/abc/feedback", {"value": 1}),
    ("DELETE", "/v1/answers/abc/feedback", None),
    ("POST", "/v1/resync", {}),
    ("POST", "/v1/chat/completions", {"model": "ragbot", "messages": [{"role": "user", "content": "VPN?"}]}),
    ("GET", "/v1/models", None),
    ("GET", "/admin/report", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {ADMIN}", f"Bearer {ADMIN}x", "Bearer"],
    ids=["none", "wrong", "basic", "prefix", "empty"],
)
def test_every_endpoint_needs_a_known_bearer_token(
    shared_api: RunningApi, method: str, path: str, body: dict | None, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=shared_api.url, timeout=60) as http:
        resp = http.request(method, path, json=body, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert ADMIN not in resp.text


def test_oversized_bodies_get_413_declared_or_streamed(api: RunningApi) -> None:
    big = json.dumps({"question": "x" * (api.ctx.settings.api_max_body_bytes + 10)}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    with api.client() as http:
        declared = http.post("/v1/ask", content=big, headers={"Content-Type": "application/json"})
        streamed = http.post("/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
        small_chunked = http.post(
            "/v1/ask",
            content=iter([b'{"question": ', b'"How do I reset my VPN?"}']),
            headers={"Content-Type": "application/json"},
        )
    assert declared.status_code == 413 and "bytes" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert small_chunked.status_code == 200, small_chunked.text  # a small chunked body is replayed intact


def test_votes_go_to_the_query_log_and_can_be_retracted(api: RunningApi) -> None:
    with api.client(PUBLIC) as http:
        answer_id = http.post("/v1/ask", json={"question": "How do I reset my VPN?"}).json()["id"]
        up = http.post(f"/v1/answers/{answer_id}/feedback", json={"value": 1})
        assert up.status_code == 200 and up.json() == {"answer_id": answer_id, "value": 1, "changed": True}
        assert [v.value for v in api.feedback.votes(answer_id)] == [1]
        down = http.post(f"/v1/answers/{answer_id}/feedback", json={"value": -1})
        assert down.status_code == 200
        assert [(v.value, v.platform, v.channel) for v in api.feedback.votes(answer_id)] == [
            (-1, "api", "api:intranet")
        ]
        gone = http.delete(f"/v1/answers/{answer_id}/feedback")
        assert gone.status_code == 200 and gone.json()["changed"] is True
        assert api.feedback.votes(answer_id) == []
        again = http.delete(f"/v1/answers/{answer_id}/feedback")
        assert again.status_code == 200 and again.json()["changed"] is False
        assert http.post(f"/v1/answers/{answer_id}/feedback", json={"value": 2}).status_code == 422
        assert http.post("/v1/answers/nope/feedback", json={"value": 1}).status_code == 404
    with api.client(FINANCE) as other:  # another token cannot vote on (or probe) this token's answers
        assert other.post(f"/v1/answers/{answer_id}/feedback", json={"value": 1}).status_code == 404
        assert other.delete(f"/v1/answers/{answer_id}/feedback").status_code == 404
    assert api.feedback.votes(answer_id) == []


def test_resync_is_for_admin_tokens_and_returns_the_report(api: RunningApi) -> None:
    with api.client(ADMIN) as http:
        resp = http.post("/v1/resync", json={"source": "eng-wiki", "full": True})
        assert http.post("/v1/resync", json={"source": "nope"}).status_code == 422
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"report": "synced eng-wiki: 0 added (full=True)", "progress": ["reading eng-wiki"]}
    with api.client(PUBLIC) as http:
        refused = http.post("/v1/resync", json={})
    assert refused.status_code == 403 and "not an admin token" in refused.json()["detail"]
    assert api.resyncs == [("eng-wiki", True)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"short": {"name": "x"}}', "at least 16 characters"),
        ('{"token-aaaaaaaaaaaaaaaa": {"sources": []}}', "name"),
        (
            '{"token-aaaaaaaaaaaaaaaa": {"name": "a"}, "token-bbbbbbbbbbbbbbbb": {"name": "a"}}',
            "share a name",
        ),
        ('{"token-aaaaaaaaaaaaaaaa": {"name": "a", "sources": ["nope"]}}', "unknown sources nope"),
    ],
)
def test_bad_token_settings_are_one_clear_line_without_the_tokens(
    tmp_path: Path, raw: str, message: str
) -> None:
    with pytest.raises(UserError) as exc:
        load_tokens(api_settings(tmp_path, "redis://unused", api_tokens=raw))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert "aaaaaaaa" not in str(exc.value) and "short" not in str(exc.value).replace("at least", "")


def test_tokens_load_with_their_rules(tmp_path: Path) -> None:
    tokens = load_tokens(api_settings(tmp_path, "redis://unused"))
    assert {t.name: (t.sources, t.admin) for t in tokens.values()} == {
        "ops": (["*"], True),
        "intranet": (None, False),
        "finance": (["finance-private"], False),
    }
    assert set(tokens) == set(TOKENS)


def test_a_taken_port_is_one_clear_line() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match="cannot serve the HTTP API on 127.0.0.1"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
