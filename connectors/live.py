"""The small interface every live connector implements (beside `Reader`): poll changes, list ids for pruning.

A live connector reads a source's API instead of an export (Onyx's load / poll / slim picture):

- `poll(checkpoint)` yields `Batch`es: the documents changed since the checkpoint (all of them when it is None,
  the first load), the ids deleted (with the ids under them, `<id>/…`: a page's attachments), the indexed
  documents whose readers alone changed (`AccessChange`: rewritten, not fetched), and the checkpoint to store
  once that batch is in the index;
- `list_ids()` yields every id the source holds now (`Listed`, with its access when the listing knows it
  cheaply), run every `RAG_LIVE_PRUNE_EVERY` syncs and on `--full`: indexed ids it does not name are deleted,
  and documents whose access changed are fetched again with `fetch(ids)`.

The sync (`live_sync.py`) does the rest: versions, chunking, embedding, deletes, the checkpoint, the report.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import Skipped
from rag_core.permissions import Access
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document

Checkpoint = dict[str, Any]  # opaque to the sync, JSON-serialisable; stored in the index metadata at commit


@dataclass(frozen=True, slots=True)
class AccessChange:
    """Who may read some indexed documents changed and nothing else did: the sync rewrites their `readers`.

    `prefix` names them: every indexed id starting with it (all threads of a Slack channel, `C123:`), or, when
    `exact`, the one document with that id (a Drive file whose content stamp did not change)."""

    prefix: str
    access: Access
    exact: bool = False

    def names(self, doc_id: str) -> bool:
        return doc_id == self.prefix if self.exact else doc_id.startswith(self.prefix)


@dataclass
class Batch:
    """Changes found by one step of a poll, and the checkpoint that is true once they are in the index."""

    documents: list[Document | Skipped] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # ids gone from the source (deleted, trashed, archived)
    access: list[AccessChange] = field(default_factory=list)  # applied after `documents` and `deleted`
    # the poll saw a change only the id listing can apply (a Confluence space the credential no longer sees:
    # its pages' ids do not say their space); the sync then lists ids at once
    wants_listing: bool = False
    checkpoint: Checkpoint | None = None  # None: this batch does not move the checkpoint


@dataclass(frozen=True, slots=True)
class Listed:
    """One id of the source's slim listing, with its access when the listing carries it."""

    id: str
    access: Access | None = None


class LiveConnector(ABC):
    """Reads one configured live source through its API."""

    def __init__(self, config: SourceConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings

    @property
    def calls(self) -> int:
        """API requests made so far (reports and the benchmark compare incremental syncs with full ones)."""
        return 0

    @abstractmethod
    def poll(self, checkpoint: Checkpoint | None) -> Iterator[Batch]:
        """Changes since `checkpoint` (everything when None), a batch at a time, in order."""

    @abstractmethod
    def list_ids(self) -> Iterator[Listed]:
        """Every id the source holds now, cheaply (no bodies)."""

    def fetch(self, ids: list[str]) -> Iterator[Document | Skipped]:
        """These documents again (their access changed); a connector whose poll sees access changes needs none."""
        return iter(())

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""
