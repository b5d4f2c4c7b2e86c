"""Which services `ragbot run` starts: every adapter whose tokens are set, then optional services.

Kept apart from `bot.runtime`, which the adapters import: this module imports the adapters.
"""

from __future__ import annotations

import importlib
from typing import Any

from bot.runtime import Service, stop_service
from bot.settings import BotSettings
from rag_core.errors import UserError

# Services `ragbot run` also starts when their setting is set: setting name -> "module:function", where the
# function takes the BotSettings and returns a `Service`. Imported only when enabled, so a missing optional
# package costs nothing. The HTTP API (bot/api, RAG_API_TOKENS) registers here.
OPTIONAL_SERVICES: dict[str, str] = {"api_tokens": "bot.api.server:api_service"}


def configured_services(settings: BotSettings) -> list[Service]:
    """Every adapter whose tokens are set (Slack Socket Mode or HTTP mode, Discord), then optional services."""
    services: list[Service] = []
    if _secret(settings.slack_bot_token):
        from bot.slack.app import http_service, socket_service

        if _secret(settings.slack_app_token):
            services.append(socket_service(settings))
        elif _secret(settings.slack_signing_secret):
            services.append(http_service(settings))
        else:
            raise UserError(
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET "
                "(HTTP mode) is; see docs/slack.md"
            )
    if _secret(settings.discord_token):
        from bot.discord.app import discord_service

        services.append(discord_service(settings))
    for setting, target in OPTIONAL_SERVICES.items():
        if getattr(settings, setting, None):
            module, _, name = target.partition(":")
            services.append(getattr(importlib.import_module(module), name)(settings))
    if not services:
        raise UserError(
            "nothing to run: set SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
            "(HTTP mode), and/or DISCORD_TOKEN — see .env.example"
        )
    return services


def _secret(value: Any) -> bool:
    return value is not None and bool(value.get_secret_value().strip())


__all__ = ["OPTIONAL_SERVICES", "configured_services", "stop_service"]
