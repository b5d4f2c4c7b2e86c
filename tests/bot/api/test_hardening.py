"""Issue 23 on the HTTP API: lone surrogates, the admin cookie behind TLS, every error declared in the OpenAPI
document, auth before the body, /v1/sources rate-limited, report and login headers, /docs without a CDN."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback.models import AnswerRecord
from rag_core.types import Answer
from tests.bot.api.conftest import ADMIN, PUBLIC, RunningApi, running_api

QUESTION = "How do I reset my VPN?"
LONE = '"how do I \\ud800 reset my VPN?"'  # a lone surrogate, as JSON escapes it


def _logged(feedback: FeedbackStore) -> list[AnswerRecord]:
    with Session(feedback.engine) as session:
        return list(session.scalars(select(AnswerRecord)))


# --- 6. lone surrogates ----------------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_content_part_is_a_422_like_in_ask(shared_api: RunningApi) -> None:
    part = '{"type": "text", "text": ' + LONE + "}"
    bodies = {
        "/v1/chat/completions": '{"model": "ragbot", "messages": [{"role": "user", "content": ['
        + part
        + "]}]}",
        "/v1/ask": '{"question": ' + LONE + "}",
    }
    with shared_api.client(ADMIN) as http:
        for path, raw in bodies.items():
            resp = http.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert resp.status_code == 422, (path, resp.text)
            assert "surrogate" not in resp.text.lower() or "\\ud800" not in resp.text


def test_the_query_log_writer_survives_any_text(tmp_path: Path) -> None:
    with FeedbackStore(f"sqlite:///{tmp_path / 'q.db'}") as store:
        odd = "a \ud800 b \udfff c \x00 d"
        answer = Answer(question=odd, text=odd, citations=[])
        store.log_answer(answer, platform="api", channel="c\ud800", user="u\udc00", outcome="answered")
        [record] = _logged(store)
        assert record.question.startswith("a ") and record.question.endswith(" d")
        assert store.buffered == 0


# --- 7. the admin cookie is Secure behind TLS ----------------------------------------------------------------


def test_the_session_cookie_is_secure_when_the_request_came_over_https(api: RunningApi) -> None:
    for headers, secure in (({"X-Forwarded-Proto": "https"}, True), ({}, False)):
        secret = api.ctx.sessions.new_login()
        resp = httpx.get(f"{api.url}/admin/login", params={"token": secret}, headers=headers)
        assert resp.status_code == 303
        assert ("; secure" in resp.headers["set-cookie"].lower()) is secure


# --- 8. every error the server returns is declared ----------------------------------------------------------


def conforms(value: object, schema: dict, doc: dict, at: str = "$") -> list[str]:
    """What in `value` does not fit the OpenAPI schema (the subset FastAPI writes: $ref, anyOf, type, properties,
    required, items, enum/const); [] when it fits."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return conforms(value, doc["components"]["schemas"][name], doc, at)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf")
        results = [conforms(value, option, doc, at) for option in options]
        return (
            [] if any(not r for r in results) else [f"{at}: fits none of {len(options)} options: {results}"]
        )
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind in kinds and not isinstance(value, kinds[kind]):
        return [f"{at}: {type(value).__name__} is not {kind}"]
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{at}: {type(value).__name__} is not {kind}"]
    problems: list[str] = []
    if isinstance(value, dict):
        problems += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += conforms(value[key], sub, doc, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += conforms(item, schema["items"], doc, f"{at}[{i}]")
    return problems


def _schema_for(doc: dict, path: str, method: str, status: int) -> dict:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not declare {status}"
    content = responses[str(status)].get("content", {}).get("application/json")
    assert content and "schema" in content, f"{method.upper()} {path} {status} has no JSON schema"
    return content["schema"]


def test_every_error_the_server_returns_matches_the_openapi_document(shared_api: RunningApi) -> None:
    with shared_api.client(ADMIN) as http:
        doc = http.get("/openapi.json").json()
        probes = [
            ("/v1/sources", "get", http.get("/v1/sources")),  # no q: a validation list
            ("/v1/resync", "post", http.post("/v1/resync", json={"full": [1]})),  # wrong type
            ("/v1/resync", "post", http.post("/v1/resync", json={"source": "nope"})),  # a string detail
            ("/v1/ask", "post", http.post("/v1/ask", content=b"x" * 10_000_000)),  # 413
            ("/v1/ask", "post", httpx.post(f"{shared_api.url}/v1/ask", json={"question": "q"})),  # 401
        ]
    for path, method, resp in probes:
        assert resp.status_code >= 400
        schema = _schema_for(doc, path, method, resp.status_code)
        problems = conforms(resp.json(), schema, doc)
        assert not problems, f"{method.upper()} {path} {resp.status_code}: {problems} in {resp.text[:300]}"
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if op.get("requestBody"):
                assert "413" in op["responses"], f"{method.upper()} {path} does not declare 413"


# --- 9. authenticate before parsing the body -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/chat/completions", "/v1/resync", "/v1/answers/a1/feedback"])
def test_no_token_and_a_malformed_body_is_a_401(shared_api: RunningApi, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        resp = httpx.post(
            f"{shared_api.url}{path}",
            content=b"{not json",
            headers={"Content-Type": "application/json", **headers},
        )
        assert resp.status_code == 401, resp.text
        assert resp.headers["www-authenticate"] == "Bearer"


# --- 10. sources rate-limited, report and login headers, /docs offline -------------------------------------------


def test_sources_is_rate_limited_per_token(small_engine: Engine, tmp_path: Path, clean_redis: str) -> None:
    with running_api(small_engine, tmp_path, clean_redis, rate_limit_per_minute=2) as api:
        with api.client(PUBLIC) as http:
            codes = [http.get("/v1/sources", params={"q": QUESTION}).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            assert http.get("/v1/sources", params={"q": QUESTION}).headers["retry-after"]
        with api.client(ADMIN) as http:  # another token has its own budget
            assert http.get("/v1/sources", params={"q": QUESTION}).status_code == 200


def test_the_report_cannot_be_framed_and_the_login_redirect_is_not_cached(api: RunningApi) -> None:
    with api.client(ADMIN) as http:
        page = http.get("/admin/report")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    login = httpx.get(f"{api.url}/admin/login", params={"token": api.ctx.sessions.new_login()})
    assert login.status_code == 303
    assert login.headers["cache-control"] == "no-store"
    assert login.headers["referrer-policy"] == "no-referrer"


def test_docs_load_nothing_from_another_host(shared_api: RunningApi) -> None:
    page = httpx.get(f"{shared_api.url}/docs")
    assert page.status_code == 200
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "the docs page loads from a CDN"
    assert "/v1/ask" in page.text and "/v1/sources" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
