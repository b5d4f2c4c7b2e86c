"""Parallel test runs on one machine get a Redis database each (tests/conftest.py): two runs sharing one flushed
each other's keys and shared rate limits (issue-19 session's three parallel fresh clones: 6-14 failures each)."""

from __future__ import annotations

import os

import pytest
import redis

from tests.conftest import _CLAIM, _claim_database, _release, empty_redis


def test_a_second_run_claims_another_database_and_flushing_keeps_the_claim(redis_url: str) -> None:
    if os.environ.get("RAG_TEST_REDIS_URL") or not redis_url.startswith("redis://127.0.0.1:6379/"):
        pytest.skip(
            "this run's Redis is not a database claimed on 127.0.0.1:6379 (RAG_TEST_REDIS_URL set, or none)"
        )
    empty_redis(redis_url)  # as clean_redis does between tests
    assert redis.Redis.from_url(redis_url).get(_CLAIM) is not None  # still held: no other run can take it
    other = _claim_database()  # what a second run starting now would get
    try:
        assert other is not None and other != redis_url
    finally:
        if other:
            _release(other)
    assert redis.Redis.from_url(other).get(_CLAIM) is None  # let go
