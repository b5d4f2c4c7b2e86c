"""`ragbot reindex`: every source re-read and re-embedded into a new collection beside the live one, then one switch.

Answers keep coming from the live collection while the new one is built (a sync transaction never shows half a
state; here the whole new collection stays unseen until the switch). Syncs of every source are locked out for the
duration. Any failure drops the new collection and leaves the live one as it was.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from connectors.sync import ProgressLine, SyncReport, default_kv, select_sources, sync_source
from rag_core.embedding import Embedder
from rag_core.errors import UserError
from rag_core.kv import make_kv
from rag_core.settings import Settings
from rag_core.store import VectorStore
from rag_core.store import aliases as al

log = logging.getLogger(__name__)


@dataclass
class ReindexResult:
    live: str  # the collection now serving
    dropped: str | None  # the one it replaced, when removed (None: still open elsewhere; removed later)
    reports: list[SyncReport]


class _Target:
    """The live name's physical collection and a new one beside it, on the configured store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.collection
        self.client = None
        if settings.qdrant_url or settings.embedded_store == "local":
            from rag_core.store import open_store
            from rag_core.store.client import ClientStore

            live_store = open_store(settings)
            assert isinstance(live_store, ClientStore)
            self.client = live_store.client
            self.live = al.client_live(self.client, self.name)
        else:
            self.root: Path = al.edge_root(settings.data_dir)
            self.live = al.edge_live(self.root, self.name)
        self.new = al.next_physical(self.live, self.name)

    def open_new(self) -> VectorStore:
        if self.client is not None:
            from rag_core.store.client import ClientStore

            al.client_drop(self.client, self.new)  # left by an interrupted reindex
            return ClientStore(self.client, self.new)
        from rag_core.store.edge import EdgeStore

        al.edge_drop(self.root, self.new)
        return EdgeStore(self.root / self.new)

    def switch(self) -> str:
        if self.client is not None:
            return al.client_switch(self.client, self.name, self.new)
        return al.edge_switch(self.root, self.name, self.new)

    def drop(self, physical: str) -> bool:
        if self.client is not None:
            al.client_drop(self.client, physical)
            return True
        for stale in al.edge_stale(self.root, self.name, keep={physical, self.new}):
            al.edge_drop(self.root, stale)  # shards an earlier reindex could not drop while a bot held them
        return al.edge_drop(self.root, physical)


def reindex(
    settings: Settings, progress: ProgressLine | None = None, embedder: Embedder | None = None
) -> ReindexResult:
    """Rebuild the index with the current model and chunking settings; see the module docstring."""
    from rag_core.engine import Engine
    from rag_core.rerank import FusionReranker

    configs = select_sources(settings, None, curated=True)
    kv = default_kv(settings.redis_url)
    with ExitStack() as held:
        for config in configs:  # no sync may write the live collection while it is being replaced
            if not held.enter_context(
                kv.lock(f"sync:{config.name}", ttl_s=settings.sync_lock_ttl_s, blocking=False)
            ):
                raise UserError(
                    f"a sync of {config.name!r} is running; run `ragbot reindex` when it has finished"
                )
        target = _Target(settings)
        store = target.open_new()
        engine = Engine(
            settings,
            store=store,
            embedder=embedder or Embedder(settings),
            reranker=FusionReranker(0.0, 0.0),
            kv=make_kv(None),
        )  # builds only
        reports: list[SyncReport] = []
        try:
            for config in configs:
                report = sync_source(
                    config, settings, engine.index_writer(), full=True, progress=progress, lock_held=True
                )
                reports.append(report)
                if report.error:
                    raise UserError(
                        f"reindex stopped: {config.name}: {report.error}; the live index is unchanged"
                    )
        except BaseException:
            store.close()
            target.drop(target.new)
            raise
        store.close()
        old = target.switch()
        log.info("index switched", extra={"event": "reindex_switch", "live": target.new, "old": old})
        dropped = old if old != target.new and target.drop(old) else None
        return ReindexResult(target.new, dropped, reports)


def reindex_command(args: object) -> int:
    """`ragbot reindex`: prints each source's line, then which collection serves now."""
    from rag_core.logs import setup_logging
    from rag_core.settings import get_settings

    settings = get_settings()
    setup_logging(settings)
    result = reindex(settings, progress=print)
    print(f"index switched to {result.live}", end="")
    print(
        f"; dropped {result.dropped}"
        if result.dropped
        else "; the old index is still open by a running bot and is removed when it restarts"
    )
    return 0
