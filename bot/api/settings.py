"""API tokens from `RAG_API_TOKENS`, and the conversation settings that make each token's rules apply."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from rag_core.errors import UserError
from rag_core.permissions import parse_principal
from rag_core.settings import Settings

PLATFORM = "api"
ALL_SOURCES = "*"


class ApiToken(BaseModel):
    """Who a bearer token is and what it may see."""

    name: str = Field(min_length=1)  # shown in logs and the query log's channel; never the token itself
    sources: list[str] | None = None  # sources it may search; None = public sources; ["*"] = every source
    admin: bool = False  # may run /v1/resync and open /admin/report
    principals: list[str] = Field(
        default_factory=list
    )  # whose restricted documents it may read (user:/group:)

    @field_validator("principals")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        return [parse_principal(p) for p in value]

    @property
    def principal(self) -> str:
        """The user and channel id the conversation layer sees for this token (rate limit, query log, votes)."""
        return f"{PLATFORM}:{self.name}"


_TOKENS = TypeAdapter(dict[str, ApiToken])


def load_tokens(settings: Settings) -> dict[str, ApiToken]:
    """Bearer token → its record. Raises UserError with one line (never the tokens) when the JSON is wrong."""
    if settings.api_tokens is None:
        return {}
    raw = settings.api_tokens.get_secret_value()
    try:
        tokens = _TOKENS.validate_python(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise UserError(f"RAG_API_TOKENS is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except ValidationError as exc:
        where = ", ".join(
            f"{'.'.join(map(str, e['loc'][1:])) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise UserError(
            f'RAG_API_TOKENS must map tokens to {{"name", "sources", "admin", "principals"}} ({where})'
        ) from None
    if any(len(token.strip()) < 16 for token in tokens):
        raise UserError(
            "RAG_API_TOKENS: every token must be at least 16 characters (use `openssl rand -hex 32`)"
        )
    names = [t.name for t in tokens.values()]
    if len(set(names)) != len(names):
        raise UserError(
            "RAG_API_TOKENS: two tokens share a name; names must be unique (they key rate limits)"
        )
    known = {s.name for s in settings.sources}
    for t in tokens.values():
        unknown = sorted(set(t.sources or ()) - known - {ALL_SOURCES})
        if known and unknown:
            raise UserError(f"RAG_API_TOKENS: token {t.name!r} names unknown sources {', '.join(unknown)}")
    return tokens


def conversation_settings(settings: Settings, tokens: dict[str, ApiToken]) -> Settings:
    """The settings the API's `Conversation` runs with: each token is a channel mapped to its sources, admin
    tokens are admin users, and streaming events are sent as often as HTTP allows."""
    channel_sources = dict(settings.channel_sources)
    admins = list(settings.admin_user_ids)
    everything = [s.name for s in settings.sources]
    for t in tokens.values():
        if t.sources is not None and ALL_SOURCES in t.sources:
            if everything:  # with no sources configured every chunk is searchable already
                channel_sources[t.principal] = everything
        elif t.sources is not None:
            channel_sources[t.principal] = list(t.sources)
        elif settings.sources:  # like a DM: public sources only
            channel_sources[t.principal] = settings.public_sources()
        if t.admin:
            admins.append(t.principal)
    return settings.model_copy(
        update={
            "channel_sources": channel_sources,
            "admin_user_ids": admins,
            "stream_edit_interval_s": settings.api_stream_interval_s,
        }
    )
