"""`/v1/knowledge`: curated answers for admin tokens (list, add, edit, remove, export, import); 403 otherwise.

Every change is synced into the index before the response, like `ragbot knowledge` in a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from bot.api.context import ApiContext, Caller, Ctx
from bot.api.schemas import ErrorOut
from bot.knowledge import Knowledge
from rag_core.feedback import curated as cur

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or unknown token"},
    403: {"model": ErrorOut, "description": "Not an admin token"},
    503: {"model": ErrorOut, "description": "No query log in this process"},
}
CuratedId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class CuratedIn(BaseModel):
    question: str = Field(min_length=1, max_length=cur.MAX_QUESTION_CHARS)
    answer: str = Field(min_length=1, max_length=cur.MAX_ANSWER_CHARS)
    by: str = Field(min_length=1, max_length=200, description="who answered, shown in citations")
    link: str = Field(default="", max_length=2000, description="where it was answered (a thread URL)")
    readers: list[str] | None = Field(
        default=None, max_length=100, description="only these principals may read it; null = everyone"
    )


class CuratedEdit(BaseModel):
    question: str | None = Field(default=None, min_length=1, max_length=cur.MAX_QUESTION_CHARS)
    answer: str | None = Field(default=None, min_length=1, max_length=cur.MAX_ANSWER_CHARS)


class CuratedOut(BaseModel):
    id: str
    question: str
    answer: str
    author: str
    platform: str
    channel_name: str
    thread_url: str
    readers: list[str] | None
    created_at: datetime
    updated_at: datetime
    age_days: int

    @classmethod
    def of(cls, saved: cur.CuratedAnswer) -> CuratedOut:
        return cls(
            id=saved.id,
            question=saved.question,
            answer=saved.answer,
            author=saved.author,
            platform=saved.platform,
            channel_name=saved.channel_name,
            thread_url=saved.thread_url,
            readers=saved.readers,
            created_at=saved.created_at,
            updated_at=saved.updated_at,
            age_days=saved.age_days(),
        )


class ChangeOut(BaseModel):
    answer: CuratedOut | None
    indexed: bool  # synced into the index already (false: at the next sync of the source)


class ImportOut(BaseModel):
    added: int
    replaced: int
    indexed: bool


@contextlib.contextmanager
def _query_log() -> Iterator[None]:
    """A database failure is a 503 with one log line, never a traceback to the caller."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.error("curated answers: query log failed", exc_info=exc, extra={"event": "api_knowledge_failed"})
        raise HTTPException(503, detail="the query log is unavailable; try again later") from None


def _admin(ctx: ApiContext, token: Caller) -> Knowledge:
    if not token.admin:
        raise HTTPException(403, detail=f"token {token.name!r} is not an admin token")
    if ctx.conversation is None or ctx.conversation.feedback is None:
        raise HTTPException(503, detail="no query log configured: curated answers cannot be stored")
    return Knowledge(ctx.conversation)


@router.get("", response_model=list[CuratedOut], responses=ERRORS)
async def list_answers(ctx: Ctx, token: Caller) -> list[CuratedOut]:
    """Every curated answer, oldest first."""
    knowledge = _admin(ctx, token)
    with _query_log():
        return [CuratedOut.of(s) for s in await asyncio.to_thread(cur.list_answers, knowledge.store)]


@router.post("", response_model=ChangeOut, status_code=201, responses={**ERRORS, 422: {"model": ErrorOut}})
async def add(body: CuratedIn, ctx: Ctx, token: Caller) -> ChangeOut:
    """Save an answer; it is cited from the next question on."""
    knowledge = _admin(ctx, token)
    with _query_log():
        try:
            saved = await knowledge.save(
                body.question,
                body.answer,
                author=body.by,
                author_id=token.principal,
                platform="api",
                thread_url=body.link,
                readers=body.readers,
            )
        except cur.CuratedError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        assert saved.answer is not None
        return ChangeOut(answer=CuratedOut.of(saved.answer), indexed=saved.indexed)


@router.patch("/{curated_id}", response_model=ChangeOut, responses={**ERRORS, 404: {"model": ErrorOut}})
async def edit(curated_id: CuratedId, body: CuratedEdit, ctx: Ctx, token: Caller) -> ChangeOut:
    """Change an answer's question or text."""
    knowledge = _admin(ctx, token)
    with _query_log():
        current = await knowledge.get(curated_id)
        if current is None:
            raise HTTPException(404, detail="no curated answer with that id")
        try:
            saved = await knowledge.edit(
                curated_id,
                user=token.principal,
                question=body.question or current.question,
                answer=body.answer or current.answer,
            )
        except cur.CuratedError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        if saved.answer is None:
            raise HTTPException(404, detail="no curated answer with that id")
        return ChangeOut(answer=CuratedOut.of(saved.answer), indexed=saved.indexed)


@router.delete("/{curated_id}", response_model=ChangeOut, responses={**ERRORS, 404: {"model": ErrorOut}})
async def remove(curated_id: CuratedId, ctx: Ctx, token: Caller) -> ChangeOut:
    """Remove an answer; it is no longer cited."""
    knowledge = _admin(ctx, token)
    with _query_log():
        if await knowledge.get(curated_id) is None:
            raise HTTPException(404, detail="no curated answer with that id")
        saved = await knowledge.remove(curated_id, user=token.principal)
        return ChangeOut(answer=None, indexed=saved.indexed)


@router.get("/export", response_class=PlainTextResponse, responses=ERRORS)
async def export(ctx: Ctx, token: Caller) -> PlainTextResponse:
    """Every curated answer as JSON lines (the format `import` and `ragbot knowledge import` read)."""
    knowledge = _admin(ctx, token)
    with _query_log():
        lines = await asyncio.to_thread(lambda: list(cur.export_lines(knowledge.store)))
        return PlainTextResponse("".join(f"{line}\n" for line in lines), media_type="application/x-ndjson")


@router.post("/import", response_model=ImportOut, responses={**ERRORS, 422: {"model": ErrorOut}})
async def import_(request: Request, ctx: Ctx, token: Caller) -> ImportOut:
    """Add (or replace, by id) answers from a JSON-lines body; a bad line rejects the whole body."""
    knowledge = _admin(ctx, token)
    with _query_log():
        try:
            text = (await request.body()).decode("utf-8")
            added, replaced = await asyncio.to_thread(cur.import_lines, knowledge.store, text.splitlines())
        except (UnicodeDecodeError, cur.CuratedError) as exc:
            raise HTTPException(422, detail=str(exc)) from None
        indexed = await knowledge.sync()
        log.info("curated answers imported", extra={"event": "curated_imported", "added": added})
        return ImportOut(added=added, replaced=replaced, indexed=indexed)
