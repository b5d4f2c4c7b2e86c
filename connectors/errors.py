"""What a reader reports when something cannot be read: a skipped file, one bad file, or the whole export gone."""

from __future__ import annotations

from dataclasses import dataclass

from rag_core.errors import ExportError


class ExportUnavailable(ExportError):
    """The export as a whole is missing or unreadable (folder gone, not a zip, over the size cap)."""


class ExtractError(Exception):
    """One file cannot be used; the message is the reason shown in the sync report."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file left out of a sync, and why."""

    path: str  # relative to the export root
    reason: str
    doc_id: str | None = None  # set when the file is a known document: its indexed version is kept
    # Set for an unreadable folder: indexed documents whose id starts with it are kept ("" keeps every document
    # not seen in this read, when the reader cannot tell which ids lived in the folder).
    keep_prefix: str | None = None


class SourceUnavailable(ExportUnavailable):
    """A live source cannot be read as a whole: unreachable, or its credential is missing, expired or lacks a scope.

    The message is one line naming the source, the credential (by its env var or file, never its value) and the
    scope or permission needed; the sync deletes nothing and the index keeps serving what it has.
    """
