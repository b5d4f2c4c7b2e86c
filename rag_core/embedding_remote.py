"""Embeddings from an OpenAI-compatible `/v1/embeddings` server (OpenAI, TEI, vLLM, Infinity, Ollama).

Texts go out in batches, at most `max_in_flight` requests at a time; each request has a timeout and is retried with
exponential backoff on timeouts, connection errors, 429 and 5xx. Any other failure is an `EmbeddingServerError`
with one line naming the server and what went wrong (never the texts or the key).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from rag_core.errors import UserError

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EmbeddingServerError(UserError):
    """The embeddings server failed, timed out after every retry, or answered with the wrong shape."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status when the server answered with an error


def _vector(embedding: str | list[float]) -> np.ndarray:
    """A row's embedding: a list of floats, or base64 of little-endian float32 (`encoding_format=base64`)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def embeddings_endpoint(url: str) -> str:
    """`http://h:8080`, `.../v1` or `.../v1/embeddings` → the full `/v1/embeddings` URL."""
    url = url.rstrip("/")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return f"{url}/embeddings"
    return f"{url}/v1/embeddings"


class RemoteBackend:
    """Batches texts to the server; vectors come back unit-length and in input order."""

    name = "remote"

    def __init__(
        self,
        url: str,
        model: str | None,
        api_key: str | None = None,
        *,
        batch_size: int = 64,
        max_in_flight: int = 4,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.endpoint = embeddings_endpoint(url)
        self.server = urlsplit(self.endpoint).netloc  # named in errors and logs; the path may carry a key
        self.model = model
        self.batch_size = max(1, batch_size)
        self.max_in_flight = max(1, max_in_flight)
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=self.max_in_flight),
        )
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="embed-remote")
        self.dim: int | None = None  # learned from the first answer; every later one must match
        self.served_model: str | None = None
        self.encoding = "base64"  # a tenth of the bytes and parse time of float lists; "float" if refused

    def probe(self) -> tuple[int, str | None]:
        """The server's vector dimension and the model it reports, from one short request."""
        try:
            self.encode(["dimension probe"], 1)
        except EmbeddingServerError as exc:
            if exc.status not in (400, 422):
                raise
            self.encoding = "float"  # a server without base64 output refuses the field
            self.encode(["dimension probe"], 1)
        assert self.dim is not None
        return self.dim, self.served_model

    def encode(self, texts: Sequence[str], batch_size: int = 0) -> np.ndarray:
        del batch_size  # the server's batch size is this backend's own setting
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        batches = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        parts = list(self._pool.map(self._request, batches))  # map keeps input order
        return np.concatenate(parts)

    def _request(self, batch: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"input": batch, "encoding_format": self.encoding}
        if self.model:
            body["model"] = self.model
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            status = None
            try:
                response = self.client.post(self.endpoint, json=body)
            except httpx.TimeoutException:
                reason = "timed out"
            except httpx.TransportError as exc:
                reason = f"unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    return self._vectors(response, len(batch))
                status = response.status_code
                reason = f"answered HTTP {status}"
                if status not in _RETRY_STATUS:
                    last = True
            if last:
                raise EmbeddingServerError(
                    f"embeddings server {self.server} {reason} (after {attempt + 1} attempt(s))", status
                )
            delay = self.backoff_s * 2**attempt
            log.warning(
                "embeddings request failed; retrying",
                extra={"event": "embedding_retry", "server": self.server, "reason": reason, "delay_s": delay},
            )
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _vectors(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            payload = response.json()
            rows = sorted(payload["data"], key=lambda row: int(row.get("index", 0)))
            vectors = np.asarray([_vector(row["embedding"]) for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServerError(
                f"embeddings server {self.server} sent a response that is not /v1/embeddings JSON ({exc!r})"
            ) from exc
        if vectors.ndim != 2 or len(vectors) != expected:
            raise EmbeddingServerError(
                f"embeddings server {self.server} returned {len(vectors)} vectors for {expected} texts"
            )
        if self.dim is None:
            self.dim = int(vectors.shape[1])
            reported = payload.get("model") if isinstance(payload, dict) else None
            self.served_model = str(reported) if reported else None
        elif vectors.shape[1] != self.dim:
            raise EmbeddingServerError(
                f"embeddings server {self.server} returned {vectors.shape[1]}-dimensional vectors, "
                f"expected {self.dim}"
            )
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        unit: np.ndarray = vectors / norms
        return unit

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()
