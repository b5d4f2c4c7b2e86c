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


class TerminalFormatter(logging.Formatter):
    """What a person at a terminal reads: `warning: message (key=value, ...)`, no logger names or JSON."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and k != "event"
        }
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        if extras:
            line += " (" + ", ".join(f"{k}={v}" for k, v in extras.items()) + ")"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


# Set by the `ragbot` command: "terminal" for a command a person runs (ask, sources, sync, eval, report...),
# "json" for --log-json; None (services, tests) follows RAG_LOG_JSON and RAG_LOG_LEVEL.
_mode: str | None = None


def set_log_mode(mode: str | None) -> None:
    """ "terminal": readable warnings and errors only; "json": JSON lines at RAG_LOG_LEVEL; None: the settings."""
    global _mode
    _mode = mode


def setup_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Services log JSON lines (or text with RAG_LOG_JSON=false) at RAG_LOG_LEVEL; terminal commands show only
    warnings and errors as readable lines, unless run with --log-json."""
    handler = logging.StreamHandler(stream or sys.stderr)
    root = logging.getLogger()
    if _mode == "terminal":
        handler.setFormatter(TerminalFormatter())
        level = max(logging.WARNING, logging.getLevelName(settings.log_level.upper()))
    else:
        handler.setFormatter(JsonFormatter() if settings.log_json or _mode == "json" else TextFormatter())
        level = logging.getLevelName(settings.log_level.upper())
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "huggingface_hub", "sentence_transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
