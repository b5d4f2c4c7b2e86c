"""Embedded store on disk with qdrant-edge: Qdrant's own engine (HNSW, sparse IDF) inside this process."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_core.errors import StoreUnavailable
from rag_core.sparse import SparseVector
from rag_core.store.base import DENSE, INDEXED_FIELDS, SPARSE, Hit, StoredPoint, Where

log = logging.getLogger(__name__)

# Run in a child process: builds the HNSW graph of a copy of the shard. Only qdrant_edge is imported there.
_OPTIMIZE_CHILD = (
    "import sys, qdrant_edge as qe; s = qe.EdgeShard.load(sys.argv[1]); s.optimize(); s.flush(); s.close()"
)

_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer}


def _filter(where: Where) -> qe.Filter | None:
    must: list[Any] = []
    if where.source is not None:
        must.append(qe.FieldCondition("source", match=qe.MatchValue(where.source)))
    if where.sources is not None:
        must.append(qe.FieldCondition("source", match=qe.MatchAny(list(where.sources) or ["\x00none"])))
    if where.doc_id is not None:
        must.append(qe.FieldCondition("doc_id", match=qe.MatchValue(where.doc_id)))
    if where.position is not None:
        must.append(qe.FieldCondition("position", match=qe.MatchValue(where.position)))
    if where.gen_lte is not None or where.gen_gt is not None:
        must.append(qe.FieldCondition("gen", range=qe.RangeFloat(lte=where.gen_lte, gt=where.gen_gt)))
    if where.dead_lte is not None or where.dead_gt is not None:
        must.append(qe.FieldCondition("dead", range=qe.RangeFloat(lte=where.dead_lte, gt=where.dead_gt)))
    should: list[Any] = []
    if where.readers is not None:  # inside the query, so the top-k is taken among readable points only
        should = [
            qe.FieldCondition("readers", match=qe.MatchAny(list(where.readers) or ["\x00none"])),
            qe.IsEmptyCondition("readers"),
        ]
    if not must and not should:
        return None
    return qe.Filter(must=must or None, should=should or None)


def _hits(points: list[Any]) -> list[Hit]:
    return [
        Hit(
            str(p.id),
            float(p.score),
            dict(p.payload or {}),
            (p.vector or {}).get(DENSE) if p.vector else None,
        )
        for p in points
    ]


class EdgeStore:
    """One qdrant-edge shard under `path`; metadata in a JSON file beside it, replaced atomically."""

    in_process = True  # answers without leaving the process (no network, nothing to wait for)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._meta_path = self.path.with_suffix(".meta.json")
        self._current_path = self.path.with_suffix(".current")  # names the shard folder in use
        self._shard: qe.EdgeShard | None = None
        # replaced shards, closed once no query can still be using them
        self._retired: list[qe.EdgeShard] = []
        self._writes = 0  # bumped by every write, so an optimized copy that missed one is thrown away
        self._lock = threading.Lock()
        self._claim()
        self._dir = self._active_dir()
        self._drop_stale_builds()
        if self._dir.is_dir() and any(self._dir.iterdir()):
            try:
                self._shard = qe.EdgeShard.load(str(self._dir))
            except Exception as exc:
                raise StoreUnavailable(f"embedded index at {self._dir} could not be opened: {exc}") from exc
            self._index_new_fields()

    def _index_new_fields(self) -> None:
        """Payload indexes added since the shard was created (`readers` on an index from before permissions)."""
        assert self._shard is not None
        missing = INDEXED_FIELDS.keys() - self._shard.info().payload_schema.keys()
        for field in sorted(missing):
            self._shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMA[INDEXED_FIELDS[field]]))

    def _active_dir(self) -> Path:
        """The folder the pointer names (after an optimize swapped one in), else `path` itself."""
        try:
            name = self._current_path.read_text().strip()
        except FileNotFoundError:
            return self.path
        candidate = self.path.parent / name
        return candidate if name and candidate.is_dir() else self.path

    def _drop_stale_builds(self) -> None:
        """Remove optimized copies left by a process that died before swapping them in."""
        for folder in self.path.parent.glob(f"{self.path.name}.opt-*"):
            if folder != self._dir and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)

    def _claim(self) -> None:
        """One process per shard: a second opener would break the holder's next flush, so it fails cleanly here."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the store's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreUnavailable(
                f"embedded index at {self.path} is in use by another process; the embedded store serves one "
                "process (the bot runs the schedule itself) — set RAG_QDRANT_URL to share an index"
            ) from None

    def ensure_collection(self, dim: int) -> None:
        if self._shard is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        self._shard = qe.EdgeShard.create(str(self._dir), config)
        for field, kind in INDEXED_FIELDS.items():
            self._shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreUnavailable(f"no index at {self.path} yet: run `ragbot sync` first")
        return self._shard

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        batch = [
            qe.Point(
                uuid.UUID(p.id),
                {
                    DENSE: [float(x) for x in p.dense],
                    SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values),
                },
                p.payload,
            )
            for p in points
        ]
        self._writes += 1
        self.shard.update(qe.UpdateOperation.upsert_points(batch))

    def search(
        self, dense: Sequence[float] | np.ndarray, sparse: SparseVector, limit: int, where: Where
    ) -> tuple[list[Hit], list[Hit]]:
        if self._shard is None:
            return [], []
        flt = _filter(where)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest([float(x) for x in dense], using=DENSE),
                filter=flt,
                with_payload=True,
            ),
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                filter=flt,
                with_payload=True,
                with_vector=[DENSE],
            ),
        ]
        if not sparse.indices:
            return _hits(self._shard.query(requests[0])), []
        dense_hits, sparse_hits = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return _hits(dense_hits), _hits(sparse_hits)

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None:
        if self._shard is not None:
            self._writes += 1
            self._shard.update(
                qe.UpdateOperation.set_payload_by_filter(_filter(where) or qe.Filter(), payload)
            )

    def delete(self, where: Where) -> None:
        if self._shard is not None:
            self._writes += 1
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(where) or qe.Filter()))

    def scroll(self, where: Where, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        if self._shard is None:
            return
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=1024, filter=_filter(where), with_payload=list(fields))
            )
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return

    def count(self, where: Where | None = None) -> int:
        if self._shard is None:
            return 0
        return self._shard.count(qe.CountRequest(exact=True, filter=_filter(where) if where else None))

    def read_meta(self) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads(self._meta_path.read_text())
        except FileNotFoundError:
            return {}
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()  # points first, then the marker that makes them visible
            self._meta_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._meta_path.with_suffix(".tmp")
            with open(tmp, "w") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self._meta_path)

    def optimize(self) -> None:
        """Build the HNSW graph over new segments without stopping queries (100k chunks: ~90 s idle; queries
        then ~8 ms instead of ~50 ms).

        `EdgeShard.optimize()` holds the GIL for its whole run, which would freeze every answer in this process.
        So a child process optimizes a copy of the shard while this one keeps serving the original, and the
        copy is swapped in afterwards. Callers must not write meanwhile (the indexer holds its transaction lock);
        a copy that missed a write is thrown away. If the child fails, the unoptimized shard keeps serving.
        """
        if self._shard is None:
            return
        with self._lock:
            self._shard.flush()
            writes = self._writes
        build = self.path.parent / f"{self.path.name}.opt-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        try:
            shutil.copytree(self._dir, build)
            subprocess.run(
                [sys.executable, "-c", _OPTIMIZE_CHILD, str(build)],
                check=True,
                capture_output=True,
                timeout=6 * 3600,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(build, ignore_errors=True)
            stderr = getattr(exc, "stderr", b"") or b""
            log.warning(
                "index optimize failed; the unoptimized index keeps serving",
                extra={
                    "event": "index_optimize_failed",
                    "error": type(exc).__name__,
                    "detail": stderr.decode(errors="replace")[-300:],
                },
            )
            return
        self._swap_in(build, writes, round(time.monotonic() - started, 1))

    def _swap_in(self, build: Path, writes: int, seconds: float) -> None:
        with self._lock:
            if self._writes != writes or self._shard is None:
                shutil.rmtree(build, ignore_errors=True)
                log.warning(
                    "index written during optimize; keeping the unoptimized index",
                    extra={"event": "index_optimize_discarded"},
                )
                return
            fresh = qe.EdgeShard.load(str(build))
            old, old_dir = self._shard, self._dir
            self._shard, self._dir = fresh, build
            tmp = self._current_path.with_suffix(".current.tmp")
            tmp.write_text(build.name)
            tmp.replace(self._current_path)  # a restart opens the optimized copy
            for shard in self._retired:  # replaced one optimize ago: no query is still inside them
                shard.close()
            self._retired = [old]
        shutil.rmtree(old_dir, ignore_errors=True)  # open files stay readable until the old shard closes
        log.info("optimized index swapped in", extra={"event": "index_optimize_swap", "s": seconds})

    def ping(self) -> bool:
        return self._shard is not None

    def close(self) -> None:
        for shard in self._retired:
            shard.close()
        self._retired = []
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
        if not self._lock_file.closed:
            self._lock_file.close()  # releases the flock


def held_elsewhere(path: Path) -> bool:
    """True when another open store (another process, or another EdgeStore here) holds the shard at `path`."""
    lock_path = Path(path).with_suffix(".lock")
    if not lock_path.exists():
        return False
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False
