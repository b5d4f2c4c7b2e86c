"""Embedding backends: throughput, quality and query latency per backend, the remote path, and a full sync.

Prints, measured in the same run on the same handbook chunks: passages/s of fp32, bf16, onnx-int8 and the `auto`
choice (ratios to fp32), their cosine to fp32, query-embedding latency p50/p95, length-sorted vs unsorted batches,
the remote path's utilisation of a local mock `/v1/embeddings` server with a fixed latency and capacity, SciFact
nDCG@10 per backend (`ragbot eval --backend`, or `--ndcg-from` earlier eval outputs), and a full sync of a handbook
Confluence export with the default backend against the bare model measured around it (goal >= 0.85x).

    .venv/bin/python benchmarks/embedding_bench.py [--chunks 256] [--sync-pages 80] [--scifact-sample 0]
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._corpus import bench_settings, handbook_documents, make_chunker, percentile  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.embedding_backends import Backend, TorchBackend, has_native_bf16, mean_cosine  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"


def handbook_chunks(embedder: Embedder, count: int) -> list[str]:
    settings = bench_settings()
    docs = handbook_documents()
    random.Random(0).shuffle(docs)
    chunker = make_chunker(embedder, settings)
    texts: list[str] = []
    for doc in docs:
        texts.extend(c.embed_text for c in chunker.split(doc))
        if len(texts) >= count:
            break
    return texts[:count]


def throughput(backend: Backend, texts: Sequence[str], batch: int) -> tuple[float, np.ndarray]:
    backend.encode(texts[:8], batch)  # warm-up
    started = time.perf_counter()
    vectors = backend.encode(texts, batch)
    return len(texts) / (time.perf_counter() - started), vectors


def query_latency(backend: Backend, queries: Sequence[str]) -> tuple[float, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        backend.encode([q], 1)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95)


def unsorted_throughput(backend: TorchBackend, texts: Sequence[str], batch: int) -> float:
    """Batches in corpus order (one encode call per batch, so nothing re-sorts them across batches)."""
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        backend.encode(texts[i : i + batch], batch)
    return len(texts) / (time.perf_counter() - started)


def remote_utilisation(texts: int, latency_s: float, capacity: int, in_flight: int) -> tuple[float, float]:
    """Share of the mock server's slot-time the client kept busy, and texts/s, for `texts` short texts.

    The mock server runs in its own process, as a real server would, so it does not share this one's GIL."""
    import httpx

    from rag_core.embedding_remote import RemoteBackend

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.embeddings_server", "--latency-ms", str(latency_s * 1000)]
        + ["--capacity", str(capacity)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        base = url.removesuffix("/v1")
        remote = RemoteBackend(url, "mock", batch_size=32, max_in_flight=in_flight, timeout_s=30)
        remote.encode(["warm up"] * 64, 32)
        httpx.get(f"{base}/reset")
        started = time.perf_counter()
        remote.encode([f"passage {i}" for i in range(texts)], 32)
        wall = time.perf_counter() - started
        busy = float(httpx.get(f"{base}/stats").json()["busy_s"])
        remote.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return busy / (capacity * wall), texts / wall


def scifact_ndcg(backend: str, args: argparse.Namespace) -> float | None:
    """Dense nDCG@10 from `ragbot eval --backend` (or from a saved output given with --ndcg-from)."""
    saved = dict(item.split("=", 1) for item in args.ndcg_from)
    if backend in saved:
        text = Path(saved[backend]).read_text()
    elif args.scifact_sample < 0:
        return None
    else:
        cmd = [sys.executable, "-m", "bot.cli", "eval", "--beir", str(SCIFACT), "--backend", backend]
        if args.scifact_sample:
            cmd += ["--corpus-sample", str(args.scifact_sample), "--limit", str(args.scifact_queries)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        text = done.stdout
        if done.returncode:
            print(f"  eval --backend {backend} failed: {done.stderr.strip().splitlines()[-1:]}")
            return None
    match = re.search(r"^dense\s+([0-9.]+)", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


def full_sync(pages: int, backend: str) -> tuple[float, float, str]:
    """Chunks/s of a full sync of a handbook Confluence export vs the bare model measured before and after."""
    from benchmarks.sync_bench import (
        DEFAULT_CORPUS,
        build_confluence_export,
        chunk_texts,
        handbook_pages,
        raw_throughput,
        timed_sync,
    )
    from rag_core.engine import Engine
    from rag_core.settings import Settings, SourceConfig

    work = Path(tempfile.mkdtemp(prefix="ragbot-embedding-bench-"))
    try:
        build_confluence_export(DEFAULT_CORPUS, handbook_pages(DEFAULT_CORPUS, pages), work / "confluence")
        config = SourceConfig(name="bench", kind="confluence", path=work / "confluence")
        settings = Settings(
            _env_file=None,
            data_dir=work / "data",
            sources=[config],
            rerank_model="",
            log_json=False,
            log_level="WARNING",
            embedding_backend=backend,
        )
        engine = Engine.from_settings(settings)
        texts = chunk_texts(engine, config, settings)
        before = raw_throughput(engine, texts, 0)
        report, seconds, _ = timed_sync(settings, engine.index_writer(), "bench")
        after = raw_throughput(engine, texts, 0)
        engine.close()
        rate = report.chunks_written / seconds
        return rate, rate / ((before + after) / 2), engine.embedder.backend_name
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=256, help="handbook chunks per throughput measurement")
    parser.add_argument("--queries", type=int, default=40, help="queries timed per backend")
    parser.add_argument("--sync-pages", type=int, default=80, help="handbook pages in the full-sync export")
    parser.add_argument("--remote-texts", type=int, default=2048)
    parser.add_argument("--remote-latency-ms", type=float, default=50.0)
    parser.add_argument("--remote-capacity", type=int, default=4)
    parser.add_argument(
        "--scifact-sample",
        type=int,
        default=0,
        help="0 = full SciFact; N = judged docs + N others; -1 = skip",
    )
    parser.add_argument("--scifact-queries", type=int, default=100, help="queries when sampling SciFact")
    parser.add_argument(
        "--ndcg-from", action="append", default=[], metavar="BACKEND=FILE", help="reuse a saved eval output"
    )
    args = parser.parse_args()
    settings = bench_settings(rerank_model="", embedding_backend="fp32")
    fp32 = Embedder(settings)
    texts = handbook_chunks(fp32, args.chunks)
    queries = [t.split(". ")[0][:120] for t in texts[: args.queries]]
    batch = settings.embedding_batch_size
    native = has_native_bf16()
    print(f"{len(texts)} handbook chunks, batch {batch}; CPU native bf16: {native}; load avg {_load()}")

    auto = Embedder(bench_settings(rerank_model="", embedding_backend="auto"))
    backends: dict[str, Callable[[], Backend]] = {
        "fp32": lambda: fp32.backend,
        "bf16": lambda: TorchBackend(copy.deepcopy(fp32.backend.model), bf16=True),  # type: ignore[attr-defined]
        "onnx-int8": lambda: Embedder(bench_settings(rerank_model="", embedding_backend="onnx-int8")).backend,
        "auto": lambda: auto.backend,
    }
    rates: dict[str, float] = {}
    reference: np.ndarray | None = None
    for name, build in backends.items():
        backend = build()
        rate, vectors = throughput(backend, texts, batch)
        reference = vectors if reference is None else reference
        p50, p95 = query_latency(backend, queries)
        rates[name] = rate
        label = f"{name} ({backend.name})" if name == "auto" else name
        note = "" if name != "bf16" or native else "  [no native bf16 on this CPU]"
        print(
            f"{label:<16} {rate:7.1f} passages/s = {rate / rates['fp32']:.2f}x fp32; cosine to fp32 "
            f"{mean_cosine(reference, vectors):.5f}; query p50 {p50:.1f} ms, p95 {p95:.1f} ms{note}"
        )
    sorted_rate = rates["fp32"]
    unsorted = unsorted_throughput(fp32.backend, texts, batch)  # type: ignore[arg-type]
    print(
        f"length-sorted batches: {sorted_rate:.1f}/s vs corpus order {unsorted:.1f}/s = {sorted_rate / unsorted:.2f}x"
    )

    util, remote_rate = remote_utilisation(
        args.remote_texts,
        args.remote_latency_ms / 1000,
        args.remote_capacity,
        settings.embedding_max_in_flight,
    )
    print(
        f"remote: {remote_rate:.0f} texts/s against a mock server of capacity {args.remote_capacity} x "
        f"{args.remote_latency_ms:.0f} ms per request; utilisation {util:.2f} (goal >= 0.8)"
    )

    ndcg: dict[str, float | None] = {}
    for name in ("fp32", "bf16", "onnx-int8", "auto"):
        if name == "bf16" and not native:
            ndcg[name] = None  # `eval --backend bf16` falls back to fp32 here: nothing of its own to measure
            print(f"SciFact dense nDCG@10 {name:<10} not measured (no native bf16: it falls back to fp32)")
            continue
        if name == "auto" and auto.backend.name in ndcg:
            ndcg[name] = ndcg[auto.backend.name]  # the same backend, the same index
        else:
            ndcg[name] = scifact_ndcg(name, args)
        shown = f"{ndcg[name]:.4f}" if ndcg[name] is not None else "not measured"
        print(f"SciFact dense nDCG@10 {name:<10} {shown}")

    rate, ratio, used = full_sync(args.sync_pages, "auto")
    print(
        f"full sync ({args.sync_pages} pages, backend {used}): {rate:.1f} chunks/s = {ratio:.2f}x bare model (goal >= 0.85x)"
    )

    delta = (
        (ndcg["auto"] - ndcg["fp32"])
        if ndcg["auto"] is not None and ndcg["fp32"] is not None
        else float("nan")
    )
    print(
        f"embedding_bench: auto/fp32 throughput {rates['auto'] / rates['fp32']:.2f}, nDCG@10 delta {delta:+.3f}, "
        f"remote utilisation {util:.2f}"
    )
    return 0


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
