"""/healthz, /readyz and /metrics served by a bot process, with a real engine, Qdrant client and Redis."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from qdrant_client import QdrantClient

from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.errors import UserError
from rag_core.feedback import metrics
from rag_core.feedback.http import HealthServer, qdrant_ready, readiness, serve_health
from rag_core.kv import make_kv
from rag_core.rerank import load_reranker
from rag_core.settings import Settings
from rag_core.store.client import ClientStore
from rag_core.types import Answer, Citation


def closed_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(Settings())


def engine_on(client: QdrantClient, embedder: Embedder, redis_url: str | None = None) -> Engine:
    settings = Settings(rerank_model="", redis_url=redis_url)
    return Engine(
        settings,
        store=ClientStore(client, "ragbot"),
        embedder=embedder,
        reranker=load_reranker(settings),
        kv=make_kv(redis_url),
    )


@pytest.fixture
def serve() -> Iterator:
    servers: list[HealthServer] = []

    def start(**kwargs) -> HealthServer:
        server = serve_health(0, host="127.0.0.1", **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_healthz_answers_while_the_process_lives(serve) -> None:
    server = serve()
    assert get(f"{server.url}/healthz")[0] == 200
    assert get(f"{server.url}/nope")[0] == 404


def test_readyz_is_ready_with_a_reachable_store_and_loaded_models(serve, embedder: Embedder) -> None:
    server = serve(engine=engine_on(QdrantClient(location=":memory:"), embedder))
    status, content_type, body = get(f"{server.url}/readyz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "ready", "checks": {"store": True, "models": True}, "failed": []}


def test_readyz_fails_when_qdrant_is_unreachable(serve, embedder: Embedder) -> None:
    unreachable = QdrantClient(url=f"http://127.0.0.1:{closed_port()}", timeout=2, check_compatibility=False)
    server = serve(engine=engine_on(unreachable, embedder))
    status, _, body = get(f"{server.url}/readyz")
    assert status == 503
    assert json.loads(body)["failed"] == ["store"]
    assert (
        get(f"{server.url}/healthz")[0] == 200
    )  # alive, just not ready: Kubernetes stops routing, no restart


def test_qdrant_ready_checks_a_real_client() -> None:
    assert qdrant_ready(QdrantClient(location=":memory:"))
    unreachable = QdrantClient(url=f"http://127.0.0.1:{closed_port()}", timeout=2, check_compatibility=False)
    assert not qdrant_ready(unreachable)


def test_readyz_checks_redis_when_one_is_configured(serve, redis_url: str) -> None:
    assert readiness(kv=make_kv(redis_url)) == {"redis": True}
    assert readiness(kv=make_kv(None)) == {}  # in-process store: nothing to reach
    server = serve(kv=make_kv(f"redis://127.0.0.1:{closed_port()}/0"))
    status, _, body = get(f"{server.url}/readyz")
    assert status == 503 and json.loads(body)["failed"] == ["redis"]


def test_a_failing_check_makes_readyz_fail_and_name_it(serve) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    server = serve(checks={"feedback_db": broken, "ok": lambda: True})
    status, _, body = get(f"{server.url}/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"feedback_db": False, "ok": True}


def test_a_busy_port_is_a_user_error(serve) -> None:
    server = serve()
    with pytest.raises(UserError, match=f"127.0.0.1:{server.port}"):
        serve_health(server.port, host="127.0.0.1")


def _samples(body: str) -> list:
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, f"no sample {name} {labels}"
    return sum(found)


def test_metrics_are_exposed_with_the_right_labels_after_a_few_questions(serve) -> None:
    platform = f"test-{uuid.uuid4().hex[:8]}"  # the registry is process-wide: our own label value isolates us
    cited = [Citation(1, "Deploys", "https://wiki/deploys", "…", 0.8, "handbook", "d1")]
    timings = {"retrieve": 30.0, "rerank": 70.0, "generate": 400.0, "total": 510.0}
    answered = Answer(
        "q1",
        "a",
        cited,
        tokens_in=1000,
        tokens_out=50,
        cost_usd=0.0002,
        timings_ms=timings,
        model="gpt-4o-mini",
    )
    cached = Answer("q1", "a", cited, cache_hit=True, timings_ms={"cache": 2.0, "total": 3.0})
    abstained = Answer("q2", "I don't know", [], abstained=True, timings_ms={"retrieve": 25.0, "total": 40.0})
    for answer in (answered, cached, abstained):
        metrics.observe_answer(answer, platform)
    metrics.observe_answer(Answer("q3", "", []), platform, "rate_limited")
    metrics.observe_answer(Answer("q4", "", [], timings_ms={"total": 9.0}), platform, "error")
    metrics.observe_vote(platform, 1)
    metrics.observe_vote(platform, 1)
    metrics.observe_vote(platform, -1)
    metrics.observe_vote(platform, 1, retracted=True)

    server = serve()
    status, content_type, body = get(f"{server.url}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(body)

    for outcome, n in (("answered", 2), ("abstained", 1), ("rate_limited", 1), ("error", 1)):
        assert _value(samples, "ragbot_questions_total", platform=platform, outcome=outcome) == n
    assert _value(samples, "ragbot_cache_hits_total", platform=platform) == 1
    # End-to-end latency of the four questions that reached the engine (rate-limited ones did not).
    assert _value(samples, "ragbot_answer_latency_seconds_count", platform=platform) == 4
    assert _value(samples, "ragbot_answer_latency_seconds_sum", platform=platform) == pytest.approx(0.562)
    assert _value(samples, "ragbot_answer_latency_seconds_bucket", platform=platform, le="0.05") == 3
    assert _value(samples, "ragbot_stage_latency_seconds_count", stage="generate") >= 1
    assert _value(samples, "ragbot_llm_tokens_total", model="gpt-4o-mini", direction="in") >= 1000
    assert _value(samples, "ragbot_llm_cost_usd_total", model="gpt-4o-mini") >= 0.0002
    assert _value(samples, "ragbot_votes_total", platform=platform, value="up") == 2
    assert _value(samples, "ragbot_votes_total", platform=platform, value="down") == 1
    assert _value(samples, "ragbot_votes_retracted_total", platform=platform, value="up") == 1


def test_sync_metrics_per_source(serve) -> None:
    source = f"src-{uuid.uuid4().hex[:8]}"
    ok = {"added": 3, "updated": 1, "deleted": 2, "unchanged": 10, "skipped": [("a.pdf", "encrypted")],
          "duration_s": 4.5, "error": None}  # fmt: skip
    metrics.observe_sync(source, ok)
    samples = _samples(get(f"{serve().url}/metrics")[2])
    assert _value(samples, "ragbot_sync_documents_total", source=source, action="added") == 3
    assert _value(samples, "ragbot_sync_documents_total", source=source, action="skipped") == 1
    assert _value(samples, "ragbot_sync_errors_total", source=source) == 0
    assert _value(samples, "ragbot_sync_duration_seconds", source=source) == 4.5
    last_success = _value(samples, "ragbot_sync_last_success_timestamp_seconds", source=source)
    assert last_success > 0

    metrics.observe_sync(source, {"error": "export folder /exports/x does not exist", "duration_s": 0.1})
    samples = _samples(get(f"{serve().url}/metrics")[2])
    assert _value(samples, "ragbot_sync_errors_total", source=source) == 1
    assert _value(samples, "ragbot_sync_last_success_timestamp_seconds", source=source) == last_success
