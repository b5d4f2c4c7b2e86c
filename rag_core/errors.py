"""The errors ragbot raises on purpose, each a one-line message for a person (httpx's `_exceptions.py` tree).

    RagbotError
    ├── UserError          bad input: an empty question, an unknown source name, a bad command-line value
    ├── ConfigError        a setting that cannot work: unknown source kind, bad cron, malformed experiment
    ├── StoreUnavailable   the vector store cannot be reached or opened
    └── ExportError        an export as a whole cannot be read (the sync deletes nothing)

Callers catch by meaning (a chat reply for `UserError`, a sync report line for `ExportError`); the CLI maps each
to its exit code (`bot/cli.py`). Anything else is a bug and keeps its traceback.
"""


class RagbotError(Exception):
    """Base of every error ragbot raises on purpose; `str(exc)` is the line shown to a person."""


class UserError(RagbotError):
    """Bad input from the person or the command line (empty question, unknown source, bad --days)."""


class ConfigError(RagbotError):
    """A setting names something that does not exist or cannot work (unknown source kind, bad cron); for settings
    that do not parse, one line per bad setting (variable, what is wrong, a good example)."""


class StoreUnavailable(RagbotError):
    """The vector store cannot be reached or opened (Qdrant down, embedded index locked or not built yet)."""


class ExportError(RagbotError):
    """An export cannot be read as a whole (raised by the connectors; nothing is deleted from the index)."""
