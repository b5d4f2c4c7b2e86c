"""The one small interface every export reader implements: list the documents of a source.

A reader yields `Document`s (stable id, title, Markdown-like text, URL, breadcrumb, author, modified, size) and
`Skipped` records for files it could not use, each with the reason. It never raises for one bad file; it raises
`ExportUnavailable` only when the export as a whole cannot be read (then nothing must be deleted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from rag_core.errors import UserError
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document


class ExportUnavailable(UserError):
    """The export as a whole is missing or unreadable (folder gone, not a zip, over the size cap)."""


class ExtractError(Exception):
    """One file cannot be used; the message is the reason shown in the sync report."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file left out of a sync, and why."""

    path: str  # relative to the export root
    reason: str
    doc_id: str | None = None  # set when the file is a known document: its indexed version is kept


class Reader(ABC):
    """Lists the documents of one configured export."""

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.total: int | None = None  # files to look at, known once reading has started (for progress bars)

    @abstractmethod
    def read(self) -> Iterator[Document | Skipped]:
        """Every document of the export (and every skipped file), in a stable order."""


def make_reader(config: SourceConfig, settings: Settings) -> Reader:
    """The reader for a source's kind."""
    if config.kind == "confluence":
        from connectors.confluence import ConfluenceReader

        return ConfluenceReader(config, settings)
    if config.kind == "drive":
        from connectors.drive import DriveReader

        return DriveReader(config, settings)
    raise UserError(f"source {config.name!r} has unknown kind {config.kind!r} (expected confluence or drive)")
