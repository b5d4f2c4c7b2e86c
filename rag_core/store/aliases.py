"""Which physical collection serves a collection name, and the atomic switch `ragbot reindex` makes.

On a Qdrant server (or qdrant-client local mode) the name is a Qdrant alias over `<name>-r<N>` (and
`<name>__meta` over `<name>-r<N>__meta`); both aliases move in one `update_collection_aliases` call. The embedded
qdrant-edge store keeps a pointer file `<name>.live` beside the shards, replaced with one rename. A collection made
before its first reindex is a plain collection named `<name>`; its first switch deletes it and creates the alias in
two calls (a moment without an index on a server); later switches are atomic.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from qdrant_client import QdrantClient, models

log = logging.getLogger(__name__)

META_SUFFIX = "__meta"


def edge_root(data_dir: Path) -> Path:
    return data_dir / "qdrant-edge"


def edge_live(root: Path, name: str) -> str:
    """The shard folder name the embedded store serves for `name`."""
    try:
        live = (root / f"{name}.live").read_text().strip()
    except FileNotFoundError:
        return name
    return live or name


def edge_switch(root: Path, name: str, physical: str) -> str:
    """Point `name` at shard `physical` (one rename); returns the shard it served before."""
    old = edge_live(root, name)
    tmp = root / f"{name}.live.tmp"
    with open(tmp, "w") as fh:
        fh.write(physical)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(root / f"{name}.live")
    return old


def edge_drop(root: Path, physical: str) -> bool:
    """Remove a shard and its files; False when a process still holds it open (its lock is taken)."""
    import fcntl

    lock = root / f"{physical}.lock"
    if lock.exists():
        with open(lock, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            shutil.rmtree(root / physical, ignore_errors=True)
            for suffix in (".meta.json", ".meta.tmp"):
                (root / f"{physical}{suffix}").unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        return True
    shutil.rmtree(root / physical, ignore_errors=True)
    (root / f"{physical}.meta.json").unlink(missing_ok=True)
    return True


def edge_stale(root: Path, name: str, keep: set[str]) -> list[str]:
    """Shards of `name` (`name`, `name-r<N>`) other than `keep`."""
    pattern = re.compile(rf"{re.escape(name)}(-r\d+)?")
    return [p.name for p in root.iterdir() if p.is_dir() and pattern.fullmatch(p.name) and p.name not in keep]


def client_live(client: QdrantClient, name: str) -> str:
    """The collection the alias `name` points at, or `name` itself when it is a plain collection."""
    for alias in client.get_aliases().aliases:
        if alias.alias_name == name:
            return alias.collection_name
    return name


def client_switch(client: QdrantClient, name: str, physical: str) -> str:
    """Move the aliases `name` and `name__meta` to `physical` in one call; returns what `name` served before."""
    old = client_live(client, name)
    ops: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
    for alias, target in ((name, physical), (name + META_SUFFIX, physical + META_SUFFIX)):
        if old != name:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=target, alias_name=alias)
            )
        )
    if old == name:  # a plain collection holds the name: it has to go before the alias can take it
        log.warning("replacing a plain collection by an alias", extra={"event": "reindex_first_switch"})
        for plain in (name, name + META_SUFFIX):
            if client.collection_exists(plain):
                client.delete_collection(plain)
    client.update_collection_aliases(change_aliases_operations=ops)
    return old


def client_drop(client: QdrantClient, physical: str) -> None:
    for collection in (physical, physical + META_SUFFIX):
        if collection_is_plain(client, collection):
            client.delete_collection(collection)


def collection_is_plain(client: QdrantClient, name: str) -> bool:
    aliases = {a.alias_name for a in client.get_aliases().aliases}
    return name not in aliases and client.collection_exists(name)


def next_physical(live: str, name: str) -> str:
    """`<name>-r<N+1>` after the live `<name>-r<N>` (or `<name>-r1` after a plain collection)."""
    match = re.fullmatch(rf"{re.escape(name)}-r(\d+)", live)
    return f"{name}-r{int(match.group(1)) + 1 if match else 1}"
