"""What every live connector shares: its credential (env var or secret file, redacted) and one HTTP client that
honours rate limits (429 + Retry-After; Google's rate-limit 403s; 5xx) with capped exponential backoff and jitter.

Failures are typed by meaning: `SourceUnavailable` (unreachable, or the credential refused: one line naming the
credential by where it comes from and the scope it needs) fails the sync; `ApiError` is one request that failed
(a listing failing fails the sync too, an item failing is skipped with the reason).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.errors import SourceUnavailable
from rag_core.errors import ExportError
from rag_core.logs import register_secret
from rag_core.settings import Settings, SourceConfig

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5  # first wait after a 5xx or a rate limit without Retry-After; doubles per retry
_GOOGLE_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


class ApiError(ExportError):
    """One request failed for a reason other than the credential (404, 400, 5xx after retries)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def credential_name(config: SourceConfig) -> str:
    """Where the credential comes from, for messages (never its value)."""
    if config.token_file:
        return f"token_file {config.token_file}"
    return f"environment variable {config.token_env}"


def read_secret(config: SourceConfig) -> str:
    """The source's credential from its secret file or env var; registered for redaction in every log line."""
    if config.token_file:
        try:
            value = config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceUnavailable(
                f"{config.name}: cannot read its token_file {config.token_file} ({exc.strerror or exc})"
            ) from None
    else:
        value = os.environ.get(config.token_env or "", "").strip()
    if not value:
        raise SourceUnavailable(f"{config.name}: {credential_name(config)} is empty or not set")
    register_secret(value)
    return value


def backoff_s(attempt: int, settings: Settings, retry_after: str | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After when given, else 2^n with full jitter."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), settings.live_max_backoff_s)
        except ValueError:
            pass  # an HTTP date: fall back to our own backoff
    return min(BACKOFF_BASE_S * (2**attempt) * random.uniform(0.5, 1.0), settings.live_max_backoff_s)


def google_rate_limited(status: int, body: Any) -> bool:
    """Google's rate limits come as 403 with reason rateLimitExceeded / userRateLimitExceeded (or as 429)."""
    if status != 403 or not isinstance(body, dict):
        return False
    errors = (body.get("error") or {}).get("errors") or []
    return any(isinstance(e, dict) and e.get("reason") in _GOOGLE_RATE_REASONS for e in errors)


class ApiClient:
    """One source's HTTP client: JSON GETs with retries, a request counter, errors free of secrets."""

    def __init__(
        self,
        config: SourceConfig,
        settings: Settings,
        base_url: str,
        headers: Mapping[str, str],
        needs: str,
    ) -> None:
        self.config = config
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.needs = needs  # the scope or permission the credential must have, for the refusal line
        self.calls = 0
        self._client = httpx.Client(
            headers=dict(headers), timeout=settings.live_timeout_s, follow_redirects=False
        )

    def url(self, path_or_url: str) -> str:
        """An absolute URL for an API path (`/rest/api/...`) or a pagination link (absolute, or site-relative)."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        base = urlsplit(self.base_url)
        context = base.path.rstrip("/")
        if context and path_or_url.startswith(context + "/"):  # Cloud's `_links.next` starts with /wiki
            return f"{base.scheme}://{base.netloc}{path_or_url}"
        return self.base_url + path_or_url

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        return self.request("GET", path, params=params).content

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = self.url(path)
        retries = self.settings.live_max_retries
        for attempt in range(retries + 1):
            self.calls += 1
            try:
                resp = self._client.request(method, url, params=params, data=data)
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise SourceUnavailable(
                        f"{self.config.name}: {self.base_url} is unreachable ({type(exc).__name__})"
                    ) from None
                self._wait(attempt, None, f"network: {type(exc).__name__}")
                continue
            body = _json_or_none(resp) if resp.status_code == 403 else None
            if (
                resp.status_code == 429
                or resp.status_code >= 500
                or google_rate_limited(resp.status_code, body)
            ):
                if attempt >= retries:
                    raise ApiError(
                        f"{self.config.name}: {_path(url)} still answered HTTP {resp.status_code} after "
                        f"{retries} retries",
                        resp.status_code,
                    )
                self._wait(attempt, resp.headers.get("Retry-After"), f"HTTP {resp.status_code}")
                continue
            if resp.status_code in (401, 403):
                raise SourceUnavailable(
                    f"{self.config.name}: the credential in {credential_name(self.config)} was refused "
                    f"(HTTP {resp.status_code}) on {_path(url)}; it must be valid and have {self.needs}"
                )
            if resp.status_code >= 400:
                raise ApiError(
                    f"{self.config.name}: {_path(url)} answered HTTP {resp.status_code}", resp.status_code
                )
            return resp
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None, why: str) -> None:
        seconds = backoff_s(attempt, self.settings, retry_after)
        log.warning(
            "live source request retried",
            extra={
                "event": "live_retry",
                "source": self.config.name,
                "why": why,
                "wait_s": round(seconds, 2),
            },
        )
        time.sleep(seconds)

    def close(self) -> None:
        self._client.close()


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _path(url: str) -> str:
    """The path of a URL, without its query (which may hold cursors, never shown) for messages."""
    return urlsplit(url).path
