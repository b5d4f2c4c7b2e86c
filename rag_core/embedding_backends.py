"""Local embedding backends for one model (fp32, bf16, ONNX int8) and the `auto` choice between them.

Every backend turns texts into unit-length float32 vectors of the same model, so a collection written by one is
searched by another: bf16 stays within cosine ~0.9999 of fp32; int8 drifts further and `auto` picks it only when it
stays within `MIN_COSINE` on this machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BACKENDS = ("fp32", "bf16", "onnx-int8")
MIN_COSINE = 0.999  # `auto` keeps a backend only if its mean cosine to fp32 is at least this
_NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_PROBE_TEXTS = 48  # passages timed per backend by `auto` (a few seconds on 2 cores)


class Backend(Protocol):
    name: str

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_native_bf16(flags: set[str] | None = None) -> bool:
    """True where the CPU computes bf16 natively (AMX or AVX512-BF16); elsewhere bf16 runs slower than fp32."""
    return bool(set(_NATIVE_BF16_FLAGS) & (cpu_flags() if flags is None else flags))


class TorchBackend:
    """sentence-transformers on torch, in fp32 or with the weights cast to bfloat16."""

    def __init__(self, model: SentenceTransformer, bf16: bool = False) -> None:
        import torch

        self.name = "bf16" if bf16 else "fp32"
        self.model = model.to(torch.bfloat16) if bf16 else model

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        out: np.ndarray = vectors.float().numpy().astype(np.float32, copy=False)
        if self.name == "bf16":  # normalised in bf16: make them unit length again in fp32
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_with_tokens(
        self, texts: Sequence[str], batch_size: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Unit vectors of `texts` and each one's contextual token vectors (special tokens included, fp32), from
        one forward pass: a question embedded for retrieval brings what the answerability check reads of it."""
        items = self.model.encode(
            list(texts), batch_size=batch_size, output_value=None, show_progress_bar=False
        )
        tokens = [
            np.asarray(
                item["token_embeddings"][item["attention_mask"].bool()].float().numpy(), dtype=np.float32
            )
            for item in items
        ]
        out = np.stack([item["sentence_embedding"].float().numpy() for item in items]).astype(
            np.float32, copy=False
        )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12), tokens


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, axis=1)))


def machine_key(model_name: str, threads: int) -> str:
    """What the `auto` choice depends on: CPU, thread count, model and runtime versions."""
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "none"
    model_line = next((ln for ln in _cpuinfo_lines() if ln.startswith("model name")), platform.processor())
    parts = [
        model_line,
        " ".join(sorted(cpu_flags())),
        str(threads),
        model_name,
        torch.__version__,
        ort_version,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def choose_backend(
    candidates: dict[str, Callable[[], Backend]],
    probe: Sequence[str],
    batch_size: int,
    choice_file: Path,
    key: str,
) -> tuple[Backend, dict[str, object]]:
    """The fastest candidate within `MIN_COSINE` of fp32, measured once per machine and remembered in `choice_file`."""
    cached = _read_choice(choice_file, key)
    if cached is not None and cached["backend"] in candidates:
        try:
            return candidates[str(cached["backend"])](), cached
        except Exception:
            log.warning("cached embedding backend failed to load; measuring again", exc_info=True)
    measured: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    loaded: dict[str, Backend] = {}
    for name, build in candidates.items():  # fp32 first: the reference
        try:
            backend = build()
            backend.encode(probe[:4], batch_size)  # warm-up
            started = time.perf_counter()
            vectors = backend.encode(probe, batch_size)
            seconds = time.perf_counter() - started
        except Exception:
            log.warning("embedding backend unavailable", exc_info=True, extra={"backend": name})
            continue
        reference = vectors if reference is None else reference
        cosine = mean_cosine(reference, vectors)
        measured[name] = {"passages_per_s": round(len(probe) / seconds, 1), "cosine": round(cosine, 5)}
        loaded[name] = backend
    eligible = [n for n, m in measured.items() if m["cosine"] >= MIN_COSINE]
    if not eligible:
        raise RuntimeError("no embedding backend could be loaded")
    best = max(eligible, key=lambda n: measured[n]["passages_per_s"])
    choice: dict[str, object] = {"key": key, "backend": best, "measured": measured}
    _write_choice(choice_file, choice)
    log.info(
        "embedding backend chosen",
        extra={"event": "embedding_backend", "backend": best, "measured": measured},
    )
    return loaded[best], choice


def _read_choice(path: Path, key: str) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(key) if isinstance(data, dict) else None
    return entry if isinstance(entry, dict) and "backend" in entry else None


def _write_choice(path: Path, choice: dict[str, object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[str(choice["key"])] = choice
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
    except OSError:
        log.warning("could not remember the embedding backend choice", exc_info=True)


PROBE_PASSAGES = [
    # Mixed lengths, like a sync's chunks: `auto` times and compares the backends on these.
    "How do I request access to the production database?",
    "Expense reports are due by the fifth business day of the following month. Attach every receipt over $25, "
    "and mark travel expenses with the project code so finance can bill them to the right customer.",
    "On-call engineers acknowledge pages within 15 minutes. If the incident affects customers, open an incident "
    "channel, name an incident commander and post updates every 30 minutes until it is resolved. Afterwards, "
    "write a blameless postmortem within five working days, listing the timeline, the root cause, what went "
    "well, what went badly and the follow-up actions with owners and due dates.",
    "VPN setup: install the client from the self-service portal, sign in with single sign-on and choose the "
    "nearest gateway.",
    "Our release train ships every Tuesday. Changes merged before Monday noon go out with it; anything later "
    "waits a week unless the release manager approves a hotfix.",
    "Parental leave is sixteen weeks at full pay for every parent, to be taken within the first year.",
]


def probe_passages(count: int = _PROBE_TEXTS) -> list[str]:
    return [PROBE_PASSAGES[i % len(PROBE_PASSAGES)] + f" ({i})" for i in range(count)]
