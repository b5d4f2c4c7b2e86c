"""The FastAPI application: routes, auth, body cap and CORS, built from the settings and a conversation."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from bot.api import admin, knowledge, openai_compat, routes, webhooks
from bot.api.auth import RequireToken, Sessions, TokenCheck
from bot.api.context import ApiContext, TokenIdentity
from bot.api.docs_page import add_docs
from bot.api.limits import BodyLimit
from bot.api.schemas import ErrorOut
from bot.api.settings import ApiToken, conversation_settings
from bot.conversation import Conversation
from rag_core.feedback import FeedbackStore
from rag_core.kv import KeyValue
from rag_core.settings import Settings

if TYPE_CHECKING:
    from connectors.confluence_api.events import ConfluenceChangeRecorder

log = logging.getLogger(__name__)


def build_context(
    settings: Settings,
    tokens: dict[str, ApiToken],
    kv: KeyValue,
    engine: object | None = None,
    feedback: FeedbackStore | None = None,
    resync: object | None = None,
) -> ApiContext:
    """The shared state: a `Conversation` over the engine (None: report only) with each token's rules."""
    api_settings = conversation_settings(settings, tokens)
    conversation = (
        Conversation(engine, api_settings, kv, feedback, resync) if engine is not None else None  # type: ignore[arg-type]
    )
    if conversation is not None:
        conversation.identities["api"] = TokenIdentity(tokens)  # each token reads as its own principals
    return ApiContext(
        settings=api_settings,
        tokens=TokenCheck(tokens),
        sessions=Sessions(kv, settings.api_session_ttl_s, settings.api_login_ttl_s),
        conversation=conversation,
        feedback=feedback,
        can_resync=resync is not None and conversation is not None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with the fields that were wrong, never the request body echoed back (it may hold secrets)."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": problems}, status_code=422)


def create_app(
    ctx: ApiContext,
    *,
    limit_body: bool = True,
    confluence_webhooks: ConfluenceChangeRecorder | None = None,
) -> ASGIApp:
    """The ASGI app `uvicorn` serves: FastAPI wrapped in the request body cap (unless the front door, which
    caps every part's bodies, serves it: `limit_body=False`). `confluence_webhooks` (from
    `webhooks.confluence_webhooks`, owned by the caller) serves `POST /webhooks/confluence`; 404 without."""
    app = FastAPI(
        title="ragbot API",
        version="1",
        description="Answers from your team's documents, with citations. See docs/api.md.",
        docs_url=None,  # FastAPI's Swagger UI loads from a public CDN; bot.api.docs_page serves /docs locally
        redoc_url=None,
        # Every route may answer these; declared so a generated client can parse them (bot.api.limits, auth).
        responses={
            413: {"model": ErrorOut, "description": "Request body over RAG_API_MAX_BODY_BYTES"},
            422: {"model": ErrorOut, "description": "A field was wrong: `detail` lists them, or says why"},
        },
    )
    add_docs(app)
    app.state.ragbot = ctx
    app.include_router(routes.router)
    app.include_router(openai_compat.router)
    app.include_router(admin.router)
    app.include_router(knowledge.router)
    app.state.confluence_webhooks = confluence_webhooks
    app.include_router(webhooks.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(RequireToken, checker=ctx.tokens)  # added before CORS: a 401 still gets CORS headers
    origins = ctx.settings.api_cors_origins
    if origins:  # off unless configured: browsers on other origins get no CORS headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    return BodyLimit(app, ctx.settings.api_max_body_bytes) if limit_body else app
