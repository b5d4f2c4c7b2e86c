"""Vector store behind one small interface: qdrant-edge embedded on disk, or Qdrant through qdrant-client."""

from __future__ import annotations

from rag_core.settings import Settings
from rag_core.store.base import NEVER, Hit, StoredPoint, VectorStore, Where

__all__ = ["NEVER", "Hit", "StoredPoint", "VectorStore", "Where", "open_store"]


def open_store(settings: Settings) -> VectorStore:
    """`RAG_QDRANT_URL` → that server; unset → the embedded store under `data_dir` (qdrant-edge by default)."""
    if settings.qdrant_url:
        from rag_core.store.client import ClientStore

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ClientStore.connect(settings.qdrant_url, settings.collection, key, settings.qdrant_timeout_s)
    if settings.embedded_store == "local":
        from qdrant_client import QdrantClient

        from rag_core.store.client import ClientStore

        path = settings.data_dir / "qdrant-local"
        path.mkdir(parents=True, exist_ok=True)
        return ClientStore(QdrantClient(path=str(path)), settings.collection)
    from rag_core.store.aliases import edge_live, edge_root
    from rag_core.store.edge import EdgeStore

    root = edge_root(settings.data_dir)
    return EdgeStore(root / edge_live(root, settings.collection))  # the shard `ragbot reindex` switched to
