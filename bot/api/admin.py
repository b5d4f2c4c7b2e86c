"""`/admin/report`: the report page `ragbot report` writes, rendered live for the last N days.

Open with an admin bearer token, or with the session cookie a one-time login link (`ragbot report --serve`) sets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.api.auth import SESSION_COOKIE, admin_or_session
from bot.api.context import Ctx

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])
MAX_REPORT_DAYS = 3660  # rag_core.feedback.report.MAX_DAYS, which loads matplotlib (a test keeps them equal)

# The page is self-contained (inline CSS, data: PNG charts); nothing else may load or run in it.
# No other site may frame it (clickjacking): frame-ancestors, and X-Frame-Options for older browsers.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The login redirect carries a fresh session cookie: never cached, and the one-time link never sent as a referrer.
LOGIN_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get(
    "/report",
    response_class=HTMLResponse,
    responses={401: {"description": "No admin token or session"}, 403: {"description": "Not an admin token"}},
)
async def report(
    request: Request,
    ctx: Ctx,
    days: Annotated[
        int | None, Query(ge=1, le=MAX_REPORT_DAYS, description="days covered, ending now")
    ] = None,
) -> HTMLResponse:
    """The admin report page (questions, feedback, coverage gaps, A/B arms) for the last `days` days."""
    who = admin_or_session(request, ctx.tokens, ctx.sessions)
    from bot.knowledge import report_args
    from rag_core.feedback.report import render_html  # matplotlib: loaded on the first report, not at start
    from rag_core.feedback.report_data import collect

    if ctx.feedback is None:
        raise HTTPException(503, detail="no query log configured")
    span = days or ctx.settings.api_report_days
    try:
        engine = ctx.conversation.engine if ctx.conversation is not None else None
        args = report_args(ctx.settings, engine)
        page = await asyncio.to_thread(
            lambda: render_html(collect(ctx.feedback.engine, span, knowledge=args))  # type: ignore[union-attr]
        )
    except Exception:  # the database: one log line, a clear status
        log.error("rendering the report failed", exc_info=True, extra={"event": "api_report_failed"})
        raise HTTPException(503, detail="the query log is unavailable; try again later") from None
    log.info("report served", extra={"event": "api_report", "by": who, "days": span})
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get(
    "/login",
    response_class=RedirectResponse,
    status_code=303,
    responses={401: {"description": "Unknown, expired or already used login link"}},
)
async def login(
    request: Request,
    ctx: Ctx,
    token: Annotated[str, Query(min_length=1, max_length=200, description="one-time login secret")],
) -> RedirectResponse:
    """Trade a one-time login link for a session cookie, then go to the report."""
    session = await asyncio.to_thread(ctx.sessions.redeem, token)
    if session is None:
        raise HTTPException(
            401, detail="this login link is unknown, expired or already used; ask for a new one"
        )
    response = RedirectResponse("/admin/report", status_code=303, headers=LOGIN_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(ctx.sessions.session_ttl_s),
        path="/admin",
        httponly=True,
        samesite="lax",
        # Secure when the request came over HTTPS, directly or through a trusted TLS proxy (uvicorn applies
        # X-Forwarded-Proto from the addresses in FORWARDED_ALLOW_IPS, default 127.0.0.1; docs/api.md); plain
        # HTTP on an intranet still works.
        secure=request.url.scheme == "https",
    )
    log.info("admin session started", extra={"event": "api_login"})
    return response
