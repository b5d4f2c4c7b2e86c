"""The one small interface every export reader implements: list the documents of a source.

A reader yields `Document`s (stable id, title, Markdown-like text, URL, breadcrumb, author, modified, size) and
`Skipped` records for files it could not use, each with the reason. It never raises for one bad file; it raises
`ExportUnavailable` only when the export as a whole cannot be read (then nothing must be deleted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.errors import ExportUnavailable, Skipped
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

if TYPE_CHECKING:
    from connectors.parse_pool import Deferred


class Reader(ABC):
    """Lists the documents of one configured export."""

    may_be_empty = False  # True: no documents means they were all removed (not an export that went missing)

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.total: int | None = None  # files to look at, known once reading has started (for progress bars)

    @property
    def path(self) -> Path:
        """The export's folder or zip (`check_kinds` makes sure an export kind has one)."""
        if self.config.path is None:
            raise ExportUnavailable(f"source {self.config.name!r} has no path to its export")
        return self.config.path

    def set_total(self, total: int) -> None:
        """Progress callback for the parts of a reader: how many files this read will look at."""
        self.total = total

    def read(self) -> Iterator[Document | Skipped]:
        """Every document of the export (and every skipped file), in a stable order, parsed in this process."""
        from connectors.parse_pool import resolve

        return resolve(self.items(), workers=0)

    @abstractmethod
    def items(self) -> Iterator[Document | Skipped | Deferred]:
        """What `read` yields, with the parsing of some files left as `Deferred` work (for a process pool)."""
