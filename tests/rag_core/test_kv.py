"""The key-value service on real Redis and in-process, same behaviour."""

from __future__ import annotations

import time

import pytest

from rag_core.kv import MemoryKV, RedisKV


@pytest.fixture(params=["memory", "redis"])
def kv(request, clean_redis):
    return MemoryKV() if request.param == "memory" else RedisKV(clean_redis)


def test_set_get_ttl(kv):
    kv.set("k", "v", ttl_s=0.2)
    assert kv.get("k") == b"v"
    time.sleep(0.35)
    assert kv.get("k") is None


def test_set_if_absent_dedupes(kv):
    assert kv.set_if_absent("event:1", "1", ttl_s=60)
    assert not kv.set_if_absent("event:1", "1", ttl_s=60)


def test_incr_counts_with_float_amounts(kv):
    assert kv.incr("spend", 0.25, ttl_s=60) == pytest.approx(0.25)
    assert kv.incr("spend", 0.5, ttl_s=60) == pytest.approx(0.75)


def test_lock_is_exclusive(kv):
    with kv.lock("sync:wiki", ttl_s=5) as first, kv.lock("sync:wiki", ttl_s=5) as second:
        assert first and not second
    with kv.lock("sync:wiki", ttl_s=5) as again:
        assert again


def test_redis_down_falls_back_in_process():
    from tests.conftest import _free_port

    kv = RedisKV(f"redis://127.0.0.1:{_free_port()}/0")
    assert not kv.ping()
    assert kv.set_if_absent("a", "1") and not kv.set_if_absent("a", "1")
    with kv.lock("x") as got:
        assert got
