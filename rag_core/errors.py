"""Errors that name what was wrong, shown to a person as one line."""


class UserError(Exception):
    """Bad input or configuration (unknown source, empty question, missing folder, unreachable Qdrant)."""


class StoreUnavailable(UserError):
    """The vector store cannot be reached or opened."""
