"""`/v1/chat/completions` and `/v1/models` as OpenAI serves them, so any OpenAI client can use ragbot as a model.

The last user message is the question, earlier user/assistant messages are its history, and the answer's
citations are appended as a numbered list. Streaming uses OpenAI's `chat.completion.chunk` server-sent events.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bot.api.context import Caller, Ctx, question
from bot.api.routes import AUTH_ERRORS, conversation_of
from bot.api.schemas import ChatCompletionRequest, ModelList, ModelOut
from bot.api.sinks import AnswerStream, Outcome, cancelled_on_disconnect
from rag_core.types import Answer, Citation, Turn

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
SOURCES_MARK = "\n\nSources:\n"
CLOSEST_MARK = "\n\nClosest sources:\n"


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """An error body OpenAI's clients parse (they raise e.g. RateLimitError for a 429)."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"Retry-After": "60"} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def citation_list(citations: list[Citation], abstained: bool) -> str:
    """The numbered sources appended to the answer text, as Markdown links."""
    if not citations:
        return ""
    lines = [f"{c.n}. [{c.title}]({c.url})" if c.url else f"{c.n}. {c.title}" for c in citations]
    return (CLOSEST_MARK if abstained else SOURCES_MARK) + "\n".join(lines)


def _strip_sources(text: str) -> str:
    """An earlier assistant message as history: its answer without the appended source list."""
    for mark in (SOURCES_MARK, CLOSEST_MARK):
        text = text.split(mark, 1)[0]
    return text


def _split(body: ChatCompletionRequest) -> tuple[str, list[Turn]] | JSONResponse:
    """(question, history) from the messages, or a 400 in OpenAI's shape."""
    last = body.messages[-1]
    text = last.text().strip()
    if last.role != "user" or not text:
        return openai_error(400, "the last message must be a user message with text", "invalid_request_error")
    history = [
        Turn(role=m.role, text=_strip_sources(m.text()) if m.role == "assistant" else m.text())
        for m in body.messages[:-1]
        if m.role in ("user", "assistant") and m.text().strip()
    ]
    return text, history


def _completion_id(answer: Answer | None) -> str:
    return f"chatcmpl-{answer.id if answer else int(time.time() * 1000)}"


def _reply_text(outcome: Outcome) -> str:
    """What the person reads: the answer with its sources, or the apology / refusal with what was found."""
    if outcome.answer is not None:
        return outcome.answer.text + citation_list(outcome.answer.citations, outcome.answer.abstained)
    return outcome.message + citation_list(outcome.citations, abstained=False)


@router.get("/models", response_model=ModelList, responses=AUTH_ERRORS)
async def models(ctx: Ctx, token: Caller) -> ModelList:
    """The one model this server offers: ragbot answering from the token's sources."""
    return ModelList(data=[ModelOut(id=ctx.settings.api_model_name)])


@router.post(
    "/chat/completions",
    responses={
        **AUTH_ERRORS,
        200: {"description": "chat.completion, or chat.completion.chunk events when `stream` is true"},
        400: {"description": "No user question in the messages"},
        404: {"description": "Unknown model"},
        429: {"description": "Rate limit or daily spend cap reached"},
    },
)
async def chat_completions(body: ChatCompletionRequest, request: Request, ctx: Ctx, token: Caller) -> Any:
    """OpenAI's chat completions: the last user message is answered from the token's sources."""
    model = ctx.settings.api_model_name
    if body.model != model:
        return openai_error(
            404,
            f"unknown model {body.model!r}; this server offers {model!r}",
            "invalid_request_error",
            "model_not_found",
        )
    split = _split(body)
    if isinstance(split, JSONResponse):
        return split
    text, history = split
    stream = AnswerStream(conversation_of(ctx), question(token, text, history))
    created = int(time.time())
    if not body.stream:
        async with cancelled_on_disconnect(request.receive, stream):
            outcome = await stream.outcome()
        if outcome.status == 429:
            return openai_error(429, outcome.message, "rate_limit_exceeded", "rate_limit_exceeded")
        answer = outcome.answer
        return {
            "id": _completion_id(answer),
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _reply_text(outcome)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": answer.tokens_in if answer else 0,
                "completion_tokens": answer.tokens_out if answer else 0,
                "total_tokens": (answer.tokens_in + answer.tokens_out) if answer else 0,
            },
        }
    async with cancelled_on_disconnect(request.receive, stream):
        refusal = await stream.first()
    if refusal is not None and refusal.status == 429:
        return openai_error(429, refusal.message, "rate_limit_exceeded", "rate_limit_exceeded")
    chunk_id = f"chatcmpl-{created}-{id(stream):x}"

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        data = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        async with cancelled_on_disconnect(request.receive, stream):
            async for delta in stream.deltas():
                yield chunk({"content": delta})
        outcome = stream.result
        assert outcome is not None
        if outcome.answer is not None:
            tail = citation_list(outcome.answer.citations, outcome.answer.abstained)
        else:
            tail = _reply_text(outcome)
        if tail:
            yield chunk({"content": tail})
        yield chunk({}, finish="stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
