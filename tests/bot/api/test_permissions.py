"""Restricted pages over the HTTP API: each token reads as its own `principals` from RAG_API_TOKENS; a token
without any sees documents visible to everyone only, on /v1/ask, /v1/sources and /v1/chat/completions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.api.settings import load_tokens
from rag_core.errors import UserError
from tests.bot.api.conftest import ADMIN, TOKENS, RunningApi, api_settings, running_api
from tests.bot.restricted import leaks

ALICE_TOKEN = "alice-token-0123456789abcdef"
COUNSEL_TOKEN = "counsel-token-0123456789abcdef"
PLAIN = "public-token-0123456789abcdef"  # conftest's "intranet": no principals
PERMISSION_TOKENS = {
    **TOKENS,
    ALICE_TOKEN: {"name": "alice-scripts", "principals": ["alice@example.com"]},
    COUNSEL_TOKEN: {"name": "counsel", "principals": ["group:legal"]},
}
CODENAME = "What is the acquisition codename?"
LAWSUIT = "How long must we preserve emails for the Contoso lawsuit?"


@pytest.fixture
def api(restricted_engine: Any, tmp_path: Path, clean_redis: str) -> Iterator[RunningApi]:
    with running_api(
        restricted_engine, tmp_path, clean_redis, api_tokens=json.dumps(PERMISSION_TOKENS)
    ) as running:
        yield running


def _ask(api: RunningApi, token: str, question: str) -> tuple[str, list[dict[str, Any]]]:
    with api.client(token) as http:
        body = http.post("/v1/ask", json={"question": question}).json()
    return body["text"], body["citations"]


def _sources(api: RunningApi, token: str, question: str) -> list[dict[str, Any]]:
    with api.client(token) as http:
        return http.get("/v1/sources", params={"q": question}).json()["citations"]


def _chat(api: RunningApi, token: str, question: str) -> str:
    with api.client(token) as http:
        body = http.post(
            "/v1/chat/completions",
            json={
                "model": api.ctx.settings.api_model_name,
                "messages": [{"role": "user", "content": question}],
            },
        ).json()
    return body["choices"][0]["message"]["content"]


def test_a_token_without_principals_never_reads_a_restricted_page(api: RunningApi) -> None:
    for token in (PLAIN, ADMIN):  # admin is about /v1/resync and the report, not about documents
        text, citations = _ask(api, token, CODENAME)
        assert leaks(text, citations) == []
        assert leaks("", _sources(api, token, CODENAME)) == []
        assert leaks(_chat(api, token, CODENAME)) == []


def test_a_token_reads_as_its_principals(api: RunningApi) -> None:
    _text, citations = _ask(api, ALICE_TOKEN, CODENAME)
    assert "Project Falcon" in [c["title"] for c in citations]
    assert "Project Falcon" in [c["title"] for c in _sources(api, ALICE_TOKEN, CODENAME)]
    assert "Project Falcon" in _chat(api, ALICE_TOKEN, CODENAME)
    # a group principal: the legal group's page, and still not Alice's
    assert "Litigation hold" in [c["title"] for c in _sources(api, COUNSEL_TOKEN, LAWSUIT)]
    assert "Project Falcon" not in [c["title"] for c in _sources(api, COUNSEL_TOKEN, CODENAME)]


def test_the_report_with_askers_questions_is_for_admins_only(api: RunningApi) -> None:
    _ask(api, ALICE_TOKEN, CODENAME)
    with api.client(ALICE_TOKEN) as http:
        assert http.get("/admin/report").status_code == 403  # principals do not make a token an admin
    with api.client(ADMIN) as http:
        assert http.get("/admin/report").status_code == 200


def test_a_principal_that_is_not_one_is_refused_at_start(tmp_path: Path) -> None:
    bad = {ALICE_TOKEN: {"name": "alice-scripts", "principals": ["alice"]}}
    with pytest.raises(UserError, match="principals"):
        load_tokens(api_settings(tmp_path, "redis://unused", api_tokens=json.dumps(bad)))
    good = load_tokens(api_settings(tmp_path, "redis://unused", api_tokens=json.dumps(PERMISSION_TOKENS)))
    assert good[ALICE_TOKEN].principals == ["user:alice@example.com"]
