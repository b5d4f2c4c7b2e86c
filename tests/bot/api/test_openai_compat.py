"""The `openai` package's own client pointed at the server: models, completions, streaming, errors."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from rag_core.engine import Engine
from tests.bot.api.conftest import ADMIN, PUBLIC, RunningApi, running_api


def client(api: RunningApi, token: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=token, max_retries=0, timeout=60)


def test_models_lists_ragbot(shared_api: RunningApi) -> None:
    assert [m.id for m in client(shared_api).models.list()] == ["ragbot"]


def test_completion_answers_the_last_user_message_with_numbered_sources(llm_api: RunningApi) -> None:
    completion = client(llm_api).chat.completions.create(
        model="ragbot",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "What does the deploy page say?"},
            {"role": "assistant", "content": "Deploys are frozen on Fridays.\n\nSources:\n1. [Deploying](u)"},
            {"role": "user", "content": "Who gets paged on call?"},
        ],
    )
    text = completion.choices[0].message.content or ""
    assert text.startswith("The answer is in the runbook [1].")
    assert "\n\nSources:\n1. [On-call runbook](https://wiki.example.com/oncall)" in text
    assert completion.choices[0].finish_reason == "stop" and completion.usage is not None
    answer_id = completion.id.removeprefix("chatcmpl-")
    assert llm_api.feedback.get_answer(answer_id) is not None  # the id votes can name


def test_streaming_is_parsed_by_the_openai_client(streaming_api: RunningApi) -> None:
    stream = client(streaming_api).chat.completions.create(
        model="ragbot", messages=[{"role": "user", "content": "Who gets paged on call?"}], stream=True
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    text = "".join(pieces)
    assert len([p for p in pieces if p]) >= 3, "tokens should arrive as several chunks"
    assert text.startswith("The answer is in the runbook [1].") and "\n\nSources:\n1. [" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_errors_come_back_as_the_clients_exceptions(
    small_engine: Engine, tmp_path: Path, clean_redis: str
) -> None:
    with running_api(small_engine, tmp_path, clean_redis, rate_limit_per_minute=1) as api:
        ask = [{"role": "user", "content": "How do I reset my VPN?"}]
        with pytest.raises(openai.AuthenticationError):
            client(api, "wrong-token-0123456789abcdef").chat.completions.create(model="ragbot", messages=ask)
        with pytest.raises(openai.NotFoundError, match="unknown model"):
            client(api).chat.completions.create(model="gpt-4o", messages=ask)
        with pytest.raises(openai.BadRequestError, match="last message must be a user message"):
            client(api).chat.completions.create(
                model="ragbot", messages=[{"role": "assistant", "content": "hi"}]
            )
        assert client(api, PUBLIC).chat.completions.create(model="ragbot", messages=ask).choices
        with pytest.raises(openai.RateLimitError, match="questions in the last minute"):
            client(api, PUBLIC).chat.completions.create(model="ragbot", messages=ask, stream=True)
