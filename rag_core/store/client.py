"""Store through qdrant-client: a Qdrant server (URL), its local on-disk mode (path) or `:memory:` (tests)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag_core.errors import StoreUnavailable
from rag_core.sparse import SparseVector
from rag_core.store.base import DENSE, INDEXED_FIELDS, SPARSE, Hit, StoredPoint, Where

_SCHEMA = {"keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER}
_META_ID = str(uuid.UUID(int=0))


def _filter(where: Where) -> models.Filter | None:
    must: list[models.Condition] = []
    if where.source is not None:
        must.append(models.FieldCondition(key="source", match=models.MatchValue(value=where.source)))
    if where.sources is not None:
        must.append(
            models.FieldCondition(key="source", match=models.MatchAny(any=list(where.sources) or ["\x00"]))
        )
    if where.doc_id is not None:
        must.append(models.FieldCondition(key="doc_id", match=models.MatchValue(value=where.doc_id)))
    if where.position is not None:
        must.append(models.FieldCondition(key="position", match=models.MatchValue(value=where.position)))
    if where.gen_lte is not None or where.gen_gt is not None:
        must.append(models.FieldCondition(key="gen", range=models.Range(lte=where.gen_lte, gt=where.gen_gt)))
    if where.dead_lte is not None or where.dead_gt is not None:
        must.append(
            models.FieldCondition(key="dead", range=models.Range(lte=where.dead_lte, gt=where.dead_gt))
        )
    should: list[models.Condition] = []
    if where.readers is not None:  # inside the query, so the top-k is taken among readable points only
        should = [
            models.FieldCondition(key="readers", match=models.MatchAny(any=list(where.readers) or ["\x00"])),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="readers")),
        ]
    if not must and not should:
        return None
    return models.Filter(must=must or None, should=should or None)


def _hits(points: list[models.ScoredPoint]) -> list[Hit]:
    return [
        Hit(
            str(p.id),
            float(p.score),
            dict(p.payload or {}),
            cast("list[float] | None", p.vector.get(DENSE)) if isinstance(p.vector, dict) else None,
        )
        for p in points
    ]


@contextlib.contextmanager
def _server_reachable() -> Iterator[None]:
    """Connection failures and server errors of a Qdrant server become `StoreUnavailable` (the engine's callers
    tell the asker the index is unreachable); nothing is remembered, so the next call tries the server again."""
    try:
        yield
    except ResponseHandlingException as exc:  # qdrant-client's wrapper of transport errors (refused, timeout)
        raise StoreUnavailable(f"the Qdrant server is unreachable ({type(exc.source).__name__})") from exc
    except UnexpectedResponse as exc:
        if exc.status_code is None or exc.status_code < 500:
            raise
        raise StoreUnavailable(f"the Qdrant server answered HTTP {exc.status_code}") from exc


class ClientStore:
    """Points in `collection`; metadata as the payload of one point in `<collection>__meta`."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection
        self.meta_collection = f"{collection}__meta"
        self._exists: bool | None = None
        self._indexes_checked = False  # payload indexes of an existing collection, checked once

    @classmethod
    def connect(
        cls, url: str, collection: str, api_key: str | None = None, timeout_s: float = 5.0
    ) -> ClientStore:
        client = QdrantClient(
            url=url, api_key=api_key, timeout=int(max(1, timeout_s)), check_compatibility=False
        )
        try:
            client.get_collections()
        except Exception as exc:  # connection errors come in many types
            raise StoreUnavailable(f"Qdrant at {url} is unreachable ({type(exc).__name__})") from exc
        return cls(client, collection)

    def _has_collection(self) -> bool:
        if not self._exists:
            with _server_reachable():
                self._exists = self.client.collection_exists(self.collection)
        return self._exists

    def ensure_collection(self, dim: int) -> None:
        if self._has_collection():
            # Payload indexes added since it was created (`readers`); local mode keeps none, so it is left alone.
            if (
                not self._indexes_checked
                and type(getattr(self.client, "_client", None)).__name__ != "QdrantLocal"
            ):
                schema = self.client.get_collection(self.collection).payload_schema or {}
                for field in sorted(INDEXED_FIELDS.keys() - schema.keys()):
                    self.client.create_payload_index(self.collection, field, _SCHEMA[INDEXED_FIELDS[field]])
            self._indexes_checked = True
            return
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        for field, kind in INDEXED_FIELDS.items():
            self.client.create_payload_index(self.collection, field, _SCHEMA[kind])
        if not self.client.collection_exists(self.meta_collection):
            self.client.create_collection(
                self.meta_collection, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT)
            )
        self._exists = True
        self._indexes_checked = True

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        self.client.upsert(
            self.collection,
            points=[
                models.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: [float(x) for x in p.dense],
                        SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                    },
                    payload=p.payload,
                )
                for p in points
            ],
            wait=True,
        )

    def search(
        self, dense: Sequence[float] | np.ndarray, sparse: SparseVector, limit: int, where: Where
    ) -> tuple[list[Hit], list[Hit]]:
        if not self._has_collection():
            return [], []
        flt = _filter(where)
        requests = [
            models.QueryRequest(
                query=[float(x) for x in dense], using=DENSE, filter=flt, limit=limit, with_payload=True
            )
        ]
        if sparse.indices:
            requests.append(
                models.QueryRequest(
                    query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                    using=SPARSE,
                    filter=flt,
                    limit=limit,
                    with_payload=True,
                    with_vector=[DENSE],
                )
            )
        with _server_reachable():
            responses = self.client.query_batch_points(self.collection, requests=requests)
        dense_hits = _hits(responses[0].points)
        sparse_hits = _hits(responses[1].points) if len(responses) > 1 else []
        return dense_hits, sparse_hits

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None:
        if self._has_collection():
            self.client.set_payload(
                self.collection, payload=payload, points=_filter(where) or models.Filter(), wait=True
            )

    def delete(self, where: Where) -> None:
        if self._has_collection():
            self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=_filter(where) or models.Filter()),
                wait=True,
            )

    def scroll(self, where: Where, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        if not self._has_collection():
            return
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=_filter(where),
                limit=1024,
                offset=offset,
                with_payload=list(fields),
                with_vectors=False,
            )
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return

    def count(self, where: Where | None = None) -> int:
        if not self._has_collection():
            return 0
        return self.client.count(
            self.collection, count_filter=_filter(where) if where else None, exact=True
        ).count

    def read_meta(self) -> dict[str, Any]:
        with _server_reachable():
            if not self.client.collection_exists(self.meta_collection):
                return {}
            records = self.client.retrieve(self.meta_collection, ids=[_META_ID], with_payload=True)
        return dict(records[0].payload or {}) if records else {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.client.upsert(
            self.meta_collection,
            points=[models.PointStruct(id=_META_ID, vector=[0.0], payload=meta)],
            wait=True,
        )

    def optimize(self) -> None:
        pass  # a Qdrant server optimizes by itself; local mode has no index to build

    def ping(self) -> bool:
        try:
            self.client.get_collections()
            return True
        except Exception:  # noqa: BLE001
            return False

    def close(self) -> None:
        self.client.close()
