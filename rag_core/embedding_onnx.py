"""The `onnx-int8` backend: the packaged weights exported once to ONNX, graph-optimized and quantized to int8.

Export uses `torch.onnx.export` and `onnxruntime.quantization` (no optimum, no hub); the files are cached under
`<data_dir>/models/<model>-<hash>/`. Pooling and normalisation follow the sentence-transformers model (mean or CLS
pooling, then unit length).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FORMAT = 1  # bump when the export recipe changes, so cached files are rebuilt


def model_fingerprint(model_dir: str) -> str:
    """Changes when the weights change: hashes the size and mtime of each file of the model folder."""
    digest = hashlib.sha256(str(_FORMAT).encode())
    root = Path(model_dir)
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:12]


def int8_model(model: SentenceTransformer, model_dir: str, cache_dir: Path) -> Path:
    """The quantized ONNX file for `model`, exported and quantized on first use."""
    folder = cache_dir / f"{Path(model_dir).name}-{model_fingerprint(model_dir)}"
    target = folder / "model-int8.onnx"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fp32 = folder / "model-fp32.onnx"
    tmp = folder / "model-int8.tmp.onnx"
    with _quiet():
        _export(model, fp32)
        optimized = _optimize(fp32, folder / "model-opt.onnx", model)
        _quantize(optimized, tmp)
    tmp.replace(target)  # complete files only: an interrupted export is redone next time
    for path in {fp32, optimized}:
        path.unlink(missing_ok=True)
    log.info(
        "embedding model exported to ONNX int8",
        extra={"event": "onnx_export", "path": str(target), "s": round(time.monotonic() - started, 1)},
    )
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's tracer warnings and the quantizer's advice (logged on the root logger) are for model
    authors, not for whoever starts the bot: keep them out of the terminal during the one-time export."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _export(model: SentenceTransformer, path: Path) -> None:
    import torch

    transformer = model[0].auto_model.eval()
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("eager")  # the plain attention graph the BERT optimizer can fuse

    class _Hidden(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = model.tokenizer(["an example", "another example sentence"], padding=True, return_tensors="pt")
    args = tuple(
        sample[name] if name in sample else torch.zeros_like(sample["input_ids"]) for name in _INPUTS
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(
            _Hidden(transformer),
            args,
            str(path),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("sdpa")


def _optimize(source: Path, target: Path, model: SentenceTransformer) -> Path:
    """BERT graph fusions (attention, LayerNorm, GELU); with per-channel int8 they keep cosine ~0.996, not ~0.96."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        config = model[0].auto_model.config
        optimized = optimize_model(
            str(source),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(target))
    except Exception:
        log.warning("ONNX graph optimization failed; quantizing the plain graph", exc_info=True)
        return source
    return target


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops carry no inferred type
    )


class OnnxBackend:
    """ONNX Runtime on the int8 model, with the model's own tokenizer, pooling and normalisation."""

    name = "onnx-int8"

    def __init__(self, model: SentenceTransformer, model_dir: str, cache_dir: Path, threads: int) -> None:
        import onnxruntime as ort

        path = int8_model(model, model_dir, cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads > 0 else (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.feeds = [i.name for i in self.session.get_inputs()]
        self.tokenizer = model.tokenizer
        self.max_tokens = int(model.max_seq_length)
        self.cls_pooling = _cls_pooling(model_dir)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), 0), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths pad least
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            rows.append(self._batch(batch))
        if not rows:
            return out
        vectors = np.concatenate(rows)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
        )
        feeds = {
            name: (enc[name] if name in enc else np.zeros_like(enc["input_ids"])).astype(np.int64)
            for name in self.feeds
        }
        hidden = self.session.run(None, feeds)[0]
        if self.cls_pooling:
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        unit: np.ndarray = (pooled / norms).astype(np.float32)
        return unit


def _cls_pooling(model_dir: str) -> bool:
    """sentence-transformers' pooling config: CLS token or mean of tokens (the default)."""
    for config in Path(model_dir).glob("*Pooling*/config.json"):
        try:
            return bool(json.loads(config.read_text()).get("pooling_mode_cls_token"))
        except (OSError, ValueError):
            return False
    return False
