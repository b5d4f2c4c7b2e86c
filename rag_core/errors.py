"""Errors that name what was wrong, shown to a person as one line."""


class UserError(Exception):
    """Bad input or configuration (unknown source, empty question, missing folder, unreachable Qdrant)."""


class StoreUnavailable(UserError):
    """The vector store cannot be reached or opened."""


class ExportError(UserError):
    """An export cannot be read as a whole (raised by the connectors; nothing is deleted from the index)."""


class ConfigError(UserError):
    """A setting names something that does not exist or cannot work (unknown source kind, bad cron)."""
