"""Structured logging: one JSON object per line (or plain text), with token-shaped strings redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

from rag_core.settings import Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
# Slack (xoxb-/xapp-/xoxp-), OpenAI-style (sk-...), bearer tokens and URL credentials
_SECRET = re.compile(
    r"(xox[abprs]-[\w-]+|xapp-[\w-]+|sk-[\w-]{8,}|Bearer\s+[\w.-]+|(?<=://)[^/@\s:]+:[^/@\s]+(?=@))"
)


_registered: set[str] = (
    set()
)  # secrets read at run time (live sources' tokens), redacted wherever they appear


def register_secret(value: str) -> None:
    """Redact `value` from every log line from now on (for tokens no pattern recognises, e.g. Atlassian's)."""
    if len(value) >= 6:  # shorter values would redact ordinary words
        _registered.add(value)


def redact(text: str) -> str:
    for value in _registered:
        if value in text:
            text = text.replace(value, "[redacted]")
    return _SECRET.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("httpx", "httpcore", "urllib3", "huggingface_hub", "sentence_transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
