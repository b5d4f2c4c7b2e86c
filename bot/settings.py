"""Settings only the chat processes read: platform tokens and adapter options, on top of the engine's settings.

The engine (`rag_core`) never sees a Slack or Discord token. Token variables keep the names people already set:
`SLACK_BOT_TOKEN`, `SLACK_APP_TOKEN`, `SLACK_SIGNING_SECRET`, `DISCORD_TOKEN` (or the same with `RAG_`).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator

from rag_core.permissions import parse_principal
from rag_core.settings import Settings


def _token_alias(name: str) -> AliasChoices:
    return AliasChoices(f"RAG_{name}", name)


class BotSettings(Settings):
    # --- chat platforms --------------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=_token_alias("SLACK_BOT_TOKEN")
    )  # xoxb-… bot token; set = the Slack adapter runs
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=_token_alias("SLACK_APP_TOKEN")
    )  # xapp-… app-level token; set = Slack Socket Mode
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=_token_alias("SLACK_SIGNING_SECRET")
    )  # verifies Slack's HTTP requests; set without an app token = Slack HTTP mode
    slack_api_url: str = "https://slack.com/api/"  # Slack Web API base URL (tests point it at a local server)
    slack_http_port: int = 3000  # deprecated alias of RAG_HTTP_PORT (this release only)
    slack_max_body_bytes: int = 1024 * 1024  # HTTP mode: larger request bodies get 413, cut off while reading
    discord_token: SecretStr | None = Field(
        default=None, validation_alias=_token_alias("DISCORD_TOKEN")
    )  # Discord bot token; set = the Discord adapter runs
    discord_guild_id: int | None = None  # sync app commands to this guild (instant); unset = global
    discord_admin_role: str | None = None  # Discord role name whose members may /resync

    # --- who is asking (docs/permissions.md) -----------------------------------------------------------------
    slack_identity_ttl_s: float = (
        600.0  # how long an asker's email (users.info) and Slack user groups are kept
    )
    slack_identity_timeout_s: float = 3.0  # users.info / usergroups.list wait; slower = public documents only
    slack_usergroups: bool = False  # Slack user groups (by handle) are groups: @legal makes group:legal
    discord_principals: dict[str, list[str]] = Field(
        default_factory=dict
    )  # Discord user id, or "&" + role id -> that person's principals (user:<email>, group:<name>)

    # --- sources that push changes ------------------------------------------------------------------------------
    confluence_webhook_secret: SecretStr | None = (
        None  # the secret of Confluence DC's webhook or Cloud's Forge relay at /webhooks/confluence (docs/connectors.md)
    )

    @field_validator("discord_principals")
    @classmethod
    def _discord_principals_parse(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {key: [parse_principal(p) for p in principals] for key, principals in value.items()}


@lru_cache(maxsize=1)
def get_bot_settings() -> BotSettings:
    """The chat process's settings, read once."""
    return BotSettings()
