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


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per request that
# cost more than the work (a cache hit's whole answer is ~0.2 ms).
async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ragbot
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]


async def current_token(
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
        asker_only=True,  # an API answer goes to the caller alone: the token's principals apply
    )


class TokenIdentity:
    """`bot.identity.Identity` for the API: each token's own `principals` from `RAG_API_TOKENS`."""

    def __init__(self, tokens: dict[str, ApiToken]) -> None:
        self.by_principal = {t.principal: frozenset(t.principals) for t in tokens.values()}

    async def principals(self, q: Question) -> frozenset[str] | None:
        return self.by_principal.get(q.user_id)
