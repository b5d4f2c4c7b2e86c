"""`/v1/ask`, `/v1/sources`, `/v1/answers/{id}/feedback` and `/v1/resync`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bot.api.context import ApiContext, Caller, Ctx, question
from bot.api.schemas import (
    MAX_QUESTION_CHARS,
    AnswerOut,
    AskRequest,
    CitationOut,
    ErrorOut,
    FeedbackOut,
    FeedbackRequest,
    ResyncOut,
    ResyncRequest,
    SourcesOut,
)
from bot.api.sinks import AnswerStream, Outcome, cancelled_on_disconnect
from bot.conversation import Conversation
from rag_core.errors import UserError
from rag_core.types import Turn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["ragbot"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or unknown token"}
}
ANSWER_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    429: {"model": ErrorOut, "description": "Rate limit or daily spend cap reached"},
    503: {"model": ErrorOut, "description": "Answering failed; `citations` holds the sources found"},
}
AnswerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def conversation_of(ctx: ApiContext) -> Conversation:
    if ctx.conversation is None:
        raise HTTPException(503, detail="this server only serves the admin report")
    return ctx.conversation


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def error_response(outcome: Outcome) -> JSONResponse:
    body = ErrorOut(detail=outcome.message, citations=[CitationOut.of(c) for c in outcome.citations])
    headers = {"Retry-After": "60"} if outcome.status == 429 else None
    return JSONResponse(body.model_dump(), status_code=outcome.status, headers=headers)


@router.post(
    "/ask",
    response_model=AnswerOut,
    responses={
        **ANSWER_ERRORS,
        200: {
            "description": "The answer; with `Accept: text/event-stream`, `token` events then one `answer` event",
            "content": {"text/event-stream": {}},
        },
    },
)
async def ask(body: AskRequest, request: Request, ctx: Ctx, token: Caller) -> Any:
    """Answer a question from the token's sources, as JSON or streamed as server-sent events."""
    history = [Turn(role=t.role, text=t.text) for t in body.history]
    stream = AnswerStream(conversation_of(ctx), question(token, body.question, history))
    if "text/event-stream" not in request.headers.get("accept", ""):
        async with cancelled_on_disconnect(request.receive, stream):
            outcome = await stream.outcome()
        if outcome.answer is None:
            return error_response(outcome)
        return AnswerOut.of(outcome.answer)
    async with cancelled_on_disconnect(request.receive, stream):
        refusal = await stream.first()
    if refusal is not None:
        return error_response(refusal)

    async def events() -> AsyncIterator[bytes]:
        async with cancelled_on_disconnect(request.receive, stream):
            async for delta in stream.deltas():
                yield sse("token", {"text": delta})
        outcome = stream.result
        assert outcome is not None
        if outcome.answer is not None:
            yield sse("answer", AnswerOut.of(outcome.answer).model_dump())
        else:
            error = ErrorOut(detail=outcome.message, citations=[CitationOut.of(c) for c in outcome.citations])
            yield sse("error", {"status": outcome.status, **error.model_dump()})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


SOURCES_RATE_LIMITED = "more than {n} source lookups a minute from this token; try again in a minute"


async def _sources_over_limit(
    ctx: ApiContext, conversation: Conversation, token: Caller
) -> JSONResponse | None:
    """429 past RAG_RATE_LIMIT_PER_MINUTE lookups a minute per token (shared limiter: Redis when configured)."""
    per_minute = ctx.settings.rate_limit_per_minute
    if per_minute <= 0:
        return None
    key = f"rate:api-sources:{token.principal}"
    count = await asyncio.to_thread(conversation.kv.incr, key, 1, 60)
    if count <= per_minute:
        return None
    log.info("sources rate-limited", extra={"event": "api_sources_rate_limited", "token": token.name})
    body = ErrorOut(detail=SOURCES_RATE_LIMITED.format(n=per_minute))
    return JSONResponse(body.model_dump(), status_code=429, headers={"Retry-After": "60"})


@router.get(
    "/sources",
    response_model=SourcesOut,
    responses={
        **AUTH_ERRORS,
        422: {"model": ErrorOut},
        429: {"model": ErrorOut, "description": "Rate limit reached"},
    },
)
async def sources(
    ctx: Ctx,
    token: Caller,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")],
    k: Annotated[int | None, Query(ge=1, le=50, description="how many sources (default top_k)")] = None,
) -> Any:
    """The sources the token may see that match a question, without generating an answer."""
    conversation = conversation_of(ctx)
    refusal = await _sources_over_limit(ctx, conversation, token)
    if refusal is not None:
        return refusal
    try:
        citations = await conversation.sources(question(token, q), k=k)
    except UserError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return SourcesOut(citations=[CitationOut.of(c) for c in citations])


async def _vote(ctx: ApiContext, token: Caller, answer_id: str, value: int, retract: bool) -> bool:
    conversation = conversation_of(ctx)
    if conversation.feedback is None:
        raise HTTPException(503, detail="no query log configured: votes cannot be stored")
    where = {"platform": "api", "channel": token.principal, "message_id": answer_id, "user": token.principal}
    try:
        if retract:
            return await conversation.retract(**where, value=value)
        return await conversation.vote(**where, value=value)
    except Exception:  # the database: say so, never a traceback to the caller
        log.error("storing api feedback failed", exc_info=True, extra={"event": "api_feedback_failed"})
        raise HTTPException(503, detail="the query log is unavailable; try again later") from None


NOT_YOURS = "no answer with that id was given to this token"


@router.post(
    "/answers/{answer_id}/feedback",
    response_model=FeedbackOut,
    responses={**AUTH_ERRORS, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def vote(answer_id: AnswerId, body: FeedbackRequest, ctx: Ctx, token: Caller) -> FeedbackOut:
    """👍 (1) or 👎 (-1) on an answer this token received; a second vote replaces the first."""
    if not await _vote(ctx, token, answer_id, body.value, retract=False):
        raise HTTPException(404, detail=NOT_YOURS)
    return FeedbackOut(answer_id=answer_id, value=body.value, changed=True)


@router.delete(
    "/answers/{answer_id}/feedback",
    response_model=FeedbackOut,
    responses={**AUTH_ERRORS, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def retract(answer_id: AnswerId, ctx: Ctx, token: Caller) -> FeedbackOut:
    """Withdraw this token's vote on an answer (`changed` is false when there was none)."""
    conversation = conversation_of(ctx)
    if conversation.feedback is None:
        raise HTTPException(503, detail="no query log configured: votes cannot be stored")
    feedback = conversation.feedback
    owned = await asyncio.to_thread(
        feedback.answer_for_message, platform="api", channel=token.principal, message_id=answer_id
    )
    if owned is None:
        raise HTTPException(404, detail=NOT_YOURS)
    changed = False
    for value in (1, -1):
        changed = await _vote(ctx, token, answer_id, value, retract=True) or changed
    return FeedbackOut(answer_id=answer_id, value=None, changed=changed)


@router.post(
    "/resync",
    response_model=ResyncOut,
    responses={**AUTH_ERRORS, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def resync(body: ResyncRequest, ctx: Ctx, token: Caller) -> ResyncOut:
    """Sync one source (or all) into the index now and return the sync report. Admin tokens only."""
    conversation = conversation_of(ctx)
    if not token.admin:
        raise HTTPException(403, detail=f"token {token.name!r} is not an admin token")
    if not ctx.can_resync:
        raise HTTPException(503, detail="syncing is not available in this process")
    known = [s.name for s in ctx.settings.sources]
    if body.source is not None and body.source not in known:
        raise HTTPException(
            422, detail=f"unknown source {body.source!r}; configured: {', '.join(known) or 'none'}"
        )
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    report = await conversation.resync(token.principal, [], body.source, body.full, progress)
    return ResyncOut(report=report, progress=lines)
