"""HTTP API throughput: 50 concurrent `POST /v1/ask` on the sample index (samples/), served by the real app.

Prints, measured in the same run: the latency of single requests one after another (the reference), then p50/p95/
max latency, errors and requests/s of N concurrent requests, and the p95 ratio to the single-request median.
Questions are distinct (numbered) so the answer cache does not hide the work; the rate limit and spend cap are off.
The clients run in a child process, as askers load a server from outside (`--in-process-clients`: in the server's
interpreter, as before, where their connection pool takes the GIL the server needs); the server's CPU per request
is printed too.

    .venv/bin/python benchmarks/api_bench.py [--requests 50] [--concurrency 50] [--keep DIR]

With an LLM that streams (a mock with a fixed latency), 1/10/50/100 clients, the pre-#21 path in the same run,
keep-alive cache hits and Slack HTTP mode: `benchmarks/concurrency_bench.py` (or `api_bench.py --llm ARGS...`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bot.api.app import build_context, create_app  # noqa: E402
from bot.api.server import ApiServer  # noqa: E402
from bot.api.settings import load_tokens  # noqa: E402
from connectors import sample_sources  # noqa: E402
from connectors.sync import run_sync  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.feedback import FeedbackStore  # noqa: E402
from rag_core.kv import MemoryKV  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
QUESTIONS = [
    "How do I get paged when I'm on call?",
    "What is the limit for a team dinner on expenses?",
    "How do I deploy to production?",
    "Who is the secondary on-call engineer?",
    "How are contractors reimbursed?",
    "What is the company's stock ticker symbol?",
    "How do I request time off?",
    "Where is the incident postmortem template?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one(http: httpx.AsyncClient, question: str) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        status = (await http.post("/v1/ask", json={"question": question})).status_code
    except httpx.HTTPError:
        status = 0
    return (time.perf_counter() - started) * 1000, status


async def measure(url: str, requests: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=limits) as http:
        single = [await one(http, f"{QUESTIONS[i % len(QUESTIONS)]} (warm-up {i})") for i in range(6)]
        reference = statistics.median(ms for ms, _ in single[1:])  # the first pays lazy loading
        gate = asyncio.Semaphore(concurrency)

        async def limited(i: int) -> tuple[float, int]:
            async with gate:
                return await one(http, f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})")

        started = time.perf_counter()
        results = await asyncio.gather(*(limited(i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies = [ms for ms, _ in results]
    errors = [status for _, status in results if status != 200]
    p95 = percentile(latencies, 0.95)
    print(f"single request, sequential (reference): median {reference:.0f} ms")
    print(
        f"{requests} requests, {concurrency} concurrent: p50 {percentile(latencies, 0.5):.0f} ms, "
        f"p95 {p95:.0f} ms, max {max(latencies):.0f} ms, {requests / wall:.1f} req/s, "
        f"errors {len(errors)}{' ' + json.dumps(sorted(set(errors))) if errors else ''}"
    )
    print(f"p95 / single-request median: {p95 / reference:.1f}x")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure_child(url: str, requests: int, concurrency: int) -> None:
    asyncio.run(measure(url, requests, concurrency))


def main() -> int:
    if (
        "--llm" in sys.argv
    ):  # the concurrency suite with a streaming mock LLM: its own script, its own arguments
        import runpy

        sys.argv = [
            str(ROOT / "benchmarks" / "concurrency_bench.py"),
            *sys.argv[sys.argv.index("--llm") + 1 :],
        ]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--keep", type=Path, default=None, help="data folder to keep (default: a temp folder)"
    )
    parser.add_argument(
        "--in-process-clients",
        action="store_true",
        help="run the clients in the server's interpreter, as this script did before (they then share its GIL)",
    )
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="api-bench-"))
    settings = get_settings().model_copy(
        update={
            "data_dir": data_dir,
            "sources": sample_sources(ROOT / "samples"),
            "api_tokens": SecretStr(json.dumps({TOKEN: {"name": "bench", "sources": ["*"]}})),
            "rate_limit_per_minute": 0,
            "daily_spend_cap_usd": 0,
            "redis_url": None,
        }
    )
    engine = Engine.from_settings(settings)
    for report in run_sync(settings, engine.index_writer()):
        print(f"indexed {report.source}: {report.added} documents")
    print(
        f"reranker: {engine.reranker.name}; LLM: {settings.llm_model if engine.generator else 'none (extractive)'}"
    )
    feedback = FeedbackStore(f"sqlite:///{data_dir / 'bench.db'}")
    ctx = build_context(settings, load_tokens(settings), MemoryKV(), engine, feedback)
    server = ApiServer(create_app(ctx))
    try:
        if args.in_process_clients:
            asyncio.run(measure(server.url, args.requests, args.concurrency))
        else:  # the clients load the server from outside, as askers do (a child process: its own interpreter)
            child = multiprocessing.get_context("spawn").Process(
                target=_measure_child, args=(server.url, args.requests, args.concurrency)
            )
            cpu, started = _cpu_s(), time.perf_counter()
            child.start()
            child.join()
            cpu, wall = _cpu_s() - cpu, time.perf_counter() - started
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(
                f"server CPU: {cpu * 1000 / (args.requests + 6):.1f} ms a request (the 6 sequential ones included), "
                f"{cpu / wall:.2f} cores while the clients ran; clients' process: "
                f"{usage.ru_utime + usage.ru_stime:.1f} s CPU (its start-up included)"
            )
    finally:
        server.stop()
        feedback.close()
        engine.close()
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
