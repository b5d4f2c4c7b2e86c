"""Bearer tokens compared in constant time, and the admin report's one-time login links and session cookies."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.api.settings import ApiToken
from rag_core.kv import KeyValue

log = logging.getLogger(__name__)

SESSION_COOKIE = "ragbot_session"
MISSING_TOKEN = "missing bearer token: send `Authorization: Bearer <token>`"
bearer = HTTPBearer(auto_error=False, description="A token from RAG_API_TOKENS")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


class TokenCheck:
    """Finds the token record for a presented bearer token without leaking, by timing, which one matched."""

    def __init__(self, tokens: dict[str, ApiToken]) -> None:
        self._tokens = [(token.encode(), record) for token, record in tokens.items()]

    def find(self, presented: str) -> ApiToken | None:
        given = presented.encode()
        found = None
        for token, record in self._tokens:  # compare against every token, not until the first match
            if hmac.compare_digest(token, given):
                found = record
        return found

    def require(self, credentials: HTTPAuthorizationCredentials | None) -> ApiToken:
        """The caller's token record, or 401."""
        if credentials is None:
            raise unauthorized(MISSING_TOKEN)
        record = self.find(credentials.credentials)
        if record is None:
            log.info("api token rejected", extra={"event": "api_unauthorized"})
            raise unauthorized("unknown bearer token")
        return record


def _key(kind: str, secret: str) -> str:
    """Secrets are stored hashed, so a Redis dump holds no usable link or session."""
    return f"api:{kind}:{hashlib.sha256(secret.encode()).hexdigest()}"


class Sessions:
    """One-time login links and the session cookies they turn into, kept in the shared key-value store."""

    def __init__(self, kv: KeyValue, session_ttl_s: float, login_ttl_s: float) -> None:
        self.kv = kv
        self.session_ttl_s = session_ttl_s
        self.login_ttl_s = login_ttl_s

    def new_login(self) -> str:
        """A login secret for a link; it works once, within `login_ttl_s`."""
        secret = secrets.token_urlsafe(32)
        self.kv.set(_key("login", secret), "1", self.login_ttl_s)
        return secret

    def redeem(self, secret: str) -> str | None:
        """Trade a login secret for a new session id; None when unknown, expired or already used."""
        if not secret or self.kv.get(_key("login", secret)) is None:
            return None
        if not self.kv.set_if_absent(_key("login-used", secret), "1", self.login_ttl_s):
            return None  # someone redeemed it first
        self.kv.delete(_key("login", secret))
        session = secrets.token_urlsafe(32)
        self.kv.set(_key("session", session), "1", self.session_ttl_s)
        return session

    def valid(self, session: str | None) -> bool:
        return bool(session) and self.kv.get(_key("session", session or "")) is not None


def admin_or_session(request: Request, checker: TokenCheck, sessions: Sessions) -> str:
    """Who may see admin pages: an admin bearer token or a valid session cookie; 401/403 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and presented:
        record = checker.find(presented.strip())
        if record is None:
            raise unauthorized("unknown bearer token")
        if not record.admin:
            raise HTTPException(403, detail=f"token {record.name!r} is not an admin token")
        return record.principal
    if sessions.valid(request.cookies.get(SESSION_COOKIE)):
        return "session"
    raise unauthorized("admin token or login session required: run `ragbot report --serve` for a login link")


class RequireToken:
    """ASGI middleware: every /v1/ request needs a known bearer token, checked before its body is read, so a
    caller without one gets 401 whatever it sent (FastAPI would parse, and reject, the body first)."""

    def __init__(self, app: ASGIApp, checker: TokenCheck) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and presented.strip() and self.checker.find(presented.strip()):
            await self.app(scope, receive, send)
            return
        detail = "unknown bearer token" if presented.strip() else MISSING_TOKEN
        log.info("api token rejected", extra={"event": "api_unauthorized", "path": scope["path"]})
        response = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
