"""`auto`'s choice: fastest within the cosine bar, broken backends skipped, the choice remembered in a file."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from rag_core.embedding_backends import choose_backend, has_native_bf16

PROBE = ["one passage", "another passage", "a third one", "and a fourth", "the fifth"]


class FakeBackend:
    """Vectors near a fixed reference, `noise` away from it, taking `delay` seconds per call."""

    def __init__(self, noise: float, delay: float) -> None:
        self.noise = noise
        self.delay = delay

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        time.sleep(self.delay)
        base = np.eye(len(texts), 8)
        base[:, -1] += self.noise  # a drift every backend but the reference shows
        return base / np.linalg.norm(base, axis=1, keepdims=True)


def builder(backend: FakeBackend, calls: list[str], name: str) -> Callable[[], FakeBackend]:
    def build() -> FakeBackend:
        calls.append(name)
        return backend

    return build


def test_the_fastest_backend_within_the_bar_wins_and_is_remembered(tmp_path: Path) -> None:
    calls: list[str] = []
    candidates = {
        "fp32": builder(FakeBackend(0.0, 0.03), calls, "fp32"),
        "close": builder(FakeBackend(0.01, 0.01), calls, "close"),  # cosine ~0.99995: eligible, fastest
        "far": builder(FakeBackend(1.0, 0.0), calls, "far"),  # faster still, but cosine ~0.7: never chosen
    }
    choice_file = tmp_path / "models" / "embedding-backend.json"
    _, choice = choose_backend(candidates, PROBE, 8, choice_file, "machine-a")
    assert choice["backend"] == "close" and choice_file.exists()

    calls.clear()
    _, again = choose_backend(candidates, PROBE, 8, choice_file, "machine-a")
    assert again["backend"] == "close" and calls == ["close"]  # no second measurement
    _, other = choose_backend(candidates, PROBE, 8, choice_file, "machine-b")
    assert other["backend"] == "close" and calls[1:] == ["fp32", "close", "far"]  # another key measures


def test_a_backend_that_fails_to_load_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FakeBackend:
        raise RuntimeError("onnxruntime missing")

    candidates = {"fp32": lambda: FakeBackend(0.0, 0.0), "onnx-int8": broken}
    _, choice = choose_backend(candidates, PROBE, 8, tmp_path / "choice.json", "k")
    assert choice["backend"] == "fp32"
    assert any("embedding backend unavailable" in r.getMessage() for r in caplog.records)


def test_a_corrupt_choice_file_is_measured_again_and_replaced(tmp_path: Path) -> None:
    choice_file = tmp_path / "choice.json"
    choice_file.write_text("{not json")
    _, choice = choose_backend({"fp32": lambda: FakeBackend(0.0, 0.0)}, PROBE, 8, choice_file, "k")
    assert choice["backend"] == "fp32" and '"fp32"' in choice_file.read_text()


def test_bf16_counts_as_native_only_with_the_cpu_flags() -> None:
    assert has_native_bf16({"avx2", "amx_bf16"}) and has_native_bf16({"avx512_bf16"})
    assert not has_native_bf16({"avx2", "fma"})
