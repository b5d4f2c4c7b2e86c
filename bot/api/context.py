"""What the routes share, kept on `app.state.ragbot` and handed to them by FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from bot.api.auth import Sessions, TokenCheck, bearer
from bot.api.settings import ApiToken
from bot.conversation import Conversation, Question
from rag_core.feedback import FeedbackStore
from rag_core.settings import Settings
from rag_core.types import Turn


@dataclass
class ApiContext:
    settings: Settings  # the conversation's settings (each token mapped to its sources)
    tokens: TokenCheck
    sessions: Sessions
    conversation: Conversation | None  # None in the report-only server of `ragbot report --serve`
    feedback: FeedbackStore | None
    can_resync: bool = False


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ragbot
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]


def current_token(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiToken:
    """The caller's token record; 401 without a known bearer token."""
    return ctx.tokens.require(credentials)


Caller = Annotated[ApiToken, Depends(current_token)]


def question(token: ApiToken, text: str, history: list[Turn] | None = None) -> Question:
    """A conversation question from a token: its principal is both the user (rate limit) and the channel (ACL)."""
    return Question(
        platform="api",
        text=text,
        user_id=token.principal,
        channel_id=token.principal,
        history=list(history or []),
    )
