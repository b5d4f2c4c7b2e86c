"""Small key-value service for cache, dedupe, locks and rate limits: Redis when configured, else in-process.

Redis errors never stop an answer: the Redis store logs once and carries on with its in-process twin.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import redis

log = logging.getLogger(__name__)


class KeyValue(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None) -> None: ...

    def set_if_absent(self, key: str, value: bytes | str, ttl_s: float | None = None) -> bool:
        """Set only when the key does not exist; True when this call set it (dedupe)."""
        ...

    def incr(self, key: str, amount: float = 1, ttl_s: float | None = None) -> float:
        """Add to a counter, creating it with a TTL on first use; returns the new value."""
        ...

    def delete(self, key: str) -> None: ...

    def lock(
        self, name: str, ttl_s: float = 600, blocking: bool = False
    ) -> contextlib.AbstractContextManager[bool]:
        """A lock held for the `with` block; yields False when `blocking=False` and someone else holds it."""
        ...

    def ping(self) -> bool: ...


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class MemoryKV:
    """In-process equivalent of the few Redis commands ragbot uses, with TTLs and an LRU bound."""

    in_process = True  # answers without leaving the process (no network, nothing to wait for)

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[bytes | float, float | None]] = OrderedDict()
        self._max = max_entries
        self._mutex = threading.RLock()

    def _live(self, key: str) -> tuple[bytes | float, float | None] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item

    def _put(self, key: str, value: bytes | float, ttl_s: float | None) -> None:
        self._data[key] = (value, time.monotonic() + ttl_s if ttl_s else None)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def get(self, key: str) -> bytes | None:
        with self._mutex:
            item = self._live(key)
            if item is None:
                return None
            value = item[0]
            return value if isinstance(value, bytes) else repr(value).encode()

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None) -> None:
        with self._mutex:
            self._put(key, _b(value), ttl_s)

    def set_if_absent(self, key: str, value: bytes | str, ttl_s: float | None = None) -> bool:
        with self._mutex:
            if self._live(key) is not None:
                return False
            self._put(key, _b(value), ttl_s)
            return True

    def incr(self, key: str, amount: float = 1, ttl_s: float | None = None) -> float:
        with self._mutex:
            item = self._live(key)
            if item is None:
                self._put(key, float(amount), ttl_s)
                return float(amount)
            value = float(item[0]) + amount
            self._data[key] = (value, item[1])
            return value

    def delete(self, key: str) -> None:
        with self._mutex:
            self._data.pop(key, None)

    @contextlib.contextmanager
    def lock(self, name: str, ttl_s: float = 600, blocking: bool = False) -> Iterator[bool]:
        """Locks live in one table per process, not per store: every caller in a process (chat /resync, the
        in-process schedule, the CLI) that names the same lock excludes the others."""
        with _process_lock(name, ttl_s, blocking) as acquired:
            yield acquired

    def ping(self) -> bool:
        return True


_LOCK_TABLE: dict[str, tuple[str, float]] = {}  # lock name -> (holder token, expiry)
_LOCK_MUTEX = threading.Lock()


def _try_lock(name: str, token: str, ttl_s: float) -> bool:
    with _LOCK_MUTEX:
        held = _LOCK_TABLE.get(name)
        if held is not None and held[1] > time.monotonic():
            return False
        _LOCK_TABLE[name] = (token, time.monotonic() + ttl_s)
        return True


@contextlib.contextmanager
def _process_lock(name: str, ttl_s: float, blocking: bool) -> Iterator[bool]:
    token = uuid.uuid4().hex
    acquired = _try_lock(name, token, ttl_s)
    while not acquired and blocking:
        time.sleep(0.05)
        acquired = _try_lock(name, token, ttl_s)
    try:
        yield acquired
    finally:
        if acquired:
            with _LOCK_MUTEX:
                held = _LOCK_TABLE.get(name)
                if held is not None and held[0] == token:
                    del _LOCK_TABLE[name]


class RedisKV:
    """Redis-backed store; on a connection error it logs once and serves from an in-process fallback."""

    def __init__(self, url: str, fallback: MemoryKV | None = None) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._fallback = fallback or MemoryKV()
        self._down_logged = False

    def _call(self, fn: Callable[[redis.Redis], Any], fallback_fn: Callable[[MemoryKV], Any]) -> Any:
        try:
            result = fn(self._redis)
            if self._down_logged:
                log.info("redis reachable again", extra={"event": "redis_up"})
                self._down_logged = False
            return result
        except redis.RedisError as exc:
            if not self._down_logged:
                log.warning(
                    "redis unreachable; continuing in-process",
                    extra={"event": "redis_down", "error": type(exc).__name__},
                )
                self._down_logged = True
            return fallback_fn(self._fallback)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._call(lambda r: r.get(key), lambda m: m.get(key))
        return value

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None) -> None:
        px = int(ttl_s * 1000) if ttl_s else None
        self._call(lambda r: r.set(key, value, px=px), lambda m: m.set(key, value, ttl_s))

    def set_if_absent(self, key: str, value: bytes | str, ttl_s: float | None = None) -> bool:
        px = int(ttl_s * 1000) if ttl_s else None
        return bool(
            self._call(
                lambda r: r.set(key, value, px=px, nx=True), lambda m: m.set_if_absent(key, value, ttl_s)
            )
        )

    def incr(self, key: str, amount: float = 1, ttl_s: float | None = None) -> float:
        def with_redis(r: redis.Redis) -> float:
            pipe = r.pipeline()
            pipe.incrbyfloat(key, amount)
            if ttl_s:
                pipe.expire(key, int(ttl_s) or 1, nx=True)
            return float(pipe.execute()[0])

        total: float = self._call(with_redis, lambda m: m.incr(key, amount, ttl_s))
        return total

    def delete(self, key: str) -> None:
        self._call(lambda r: r.delete(key), lambda m: m.delete(key))

    @contextlib.contextmanager
    def lock(self, name: str, ttl_s: float = 600, blocking: bool = False) -> Iterator[bool]:
        try:
            lock = self._redis.lock(f"lock:{name}", timeout=ttl_s, blocking=blocking)
            acquired = bool(lock.acquire(blocking=blocking))
        except redis.RedisError:
            with self._fallback.lock(name, ttl_s, blocking) as got:
                yield got
            return
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(redis.RedisError):
                    lock.release()

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False


def make_kv(redis_url: str | None, max_entries: int = 100_000) -> KeyValue:
    """Redis when a URL is configured, the in-process store otherwise."""
    if redis_url:
        return RedisKV(redis_url, MemoryKV(max_entries))
    return MemoryKV(max_entries)
