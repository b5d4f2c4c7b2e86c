"""Many askers at once through the HTTP API, with an LLM that only waits: answers in flight, throughput, latency.

A mock OpenAI-compatible server streams every answer over a fixed time (default 2 s, 20 tokens) and answers the
query-side phrasing call (on by default: `RAG_MULTI_QUERY=3`) with three phrasings after 0.5 s, so each answer makes
the two LLM calls and four searches it makes with the shipped settings (`--multi-query 0`: one call). For 1/10/50/100
clients on distinct questions it prints answers in flight (the most LLM streams open at once), answers/s, p50/p95
and the ratio of p50 to the single-client p50, and the CPU the server's process used. The mock LLM and the HTTP
clients run in a child process (`LoadProcess`), so they load the server from outside instead of sharing its
interpreter; the Slack part keeps its fake Slack in the server's process. `--old-path` measures the same with the pre-#21 answer path in the same run (the engine's sync `answer` in
`asyncio.to_thread` on the loop's default pool). Then: a cache hit's latency on a kept-alive connection, with and
without TCP_NODELAY on the listening socket.

    .venv/bin/python benchmarks/concurrency_bench.py [--llm-seconds 2] [--clients 1,10,50,100] [--old-path]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bot.api.app import build_context, create_app  # noqa: E402
from bot.api.settings import load_tokens  # noqa: E402
from bot.front_door import FrontDoor  # noqa: E402
from connectors import sample_sources  # noqa: E402
from connectors.sync import run_sync  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.feedback import FeedbackStore  # noqa: E402
from rag_core.feedback.serving import ThreadedServer  # noqa: E402
from rag_core.kv import MemoryKV  # noqa: E402
from rag_core.settings import Settings, get_settings  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
REPLY = "When you are on call, PagerDuty pages you by phone call and SMS; acknowledge a page within 5 minutes [1]."
QUESTIONS = [
    "How do I get paged when I'm on call?",
    "How fast must a page be acknowledged?",
    "Who is paged if the primary does not acknowledge?",
    "How do I deploy to production?",
]


def grounded_reply(messages: list[dict[str, Any]]) -> str:
    """What a model that answers from its sources says: the first sentence of source [1], cited. (REPLY, the same
    text for every question, fails the citation check for most questions and measures the quoting fallback.)"""
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    lines = system.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[1] "):
            body = next((t.strip() for t in lines[i + 1 :] if t.strip()), "")
            sentence = body.split(". ")[0].rstrip(".")
            if sentence:
                return f"{sentence} [1]."
    return REPLY


class MockLLM:
    """Streams an answer in 20 pieces over `seconds` (`grounded_reply`, or REPLY with `fixed_reply`); counts the
    streams open at once."""

    def __init__(self, seconds: float, fixed_reply: bool = False, query_seconds: float = 0.5) -> None:
        self.seconds = seconds
        self.query_seconds = query_seconds
        self.fixed_reply = fixed_reply
        self.open = 0
        self.max_open = 0
        self.lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
        self.server = ThreadedServer(app)
        self.base_url = f"{self.server.url}/v1"

    def reset(self) -> None:
        with self.lock:
            self.max_open = self.open

    async def completions(self, request: Request) -> StreamingResponse:
        body = await request.json()
        reply = REPLY if self.fixed_reply else grounded_reply(body.get("messages") or [])
        words = reply.split(" ")
        step = max(1, len(words) // 20)
        pieces = [" ".join(words[i : i + step]) + " " for i in range(0, len(words), step)]

        async def stream() -> Any:
            with self.lock:
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            try:
                for piece in pieces:
                    await asyncio.sleep(self.seconds / len(pieces))
                    yield _event(
                        {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    )
                yield _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                usage = {"prompt_tokens": 500, "completion_tokens": len(pieces), "total_tokens": 520}
                yield _event({"choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
            finally:
                with self.lock:
                    self.open -= 1

        if not body.get("stream"):  # a query-side call (phrasings): one short reply after `query_seconds`
            await asyncio.sleep(self.query_seconds)
            return JSONResponse(_phrasings(body.get("messages") or []))
        return StreamingResponse(stream(), media_type="text/event-stream")


def _phrasings(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat completion holding three rephrasings of the user's message, as the multi-query prompt asks."""
    question = next((m.get("content", "") for m in messages if m.get("role") == "user"), "").rstrip("?")
    lines = [f"{question} policy", f"{question} process", f"how to: {question}"]
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "\n".join(lines)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 30, "total_tokens": 90},
    }


def _event(data: dict[str, Any]) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-model"}
    return f"data: {json.dumps({**base, **data})}\n\n".encode()


class LoadProcess:
    """The mock LLM and the API's clients in a child process: they load the server from outside, as the LLM and
    the askers do, instead of sharing its interpreter (and its GIL) with it."""

    def __init__(self, llm_seconds: float, fixed_reply: bool, query_seconds: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_load_main, args=(child, llm_seconds, fixed_reply, query_seconds), daemon=True
        )
        self.process.start()
        self.base_url: str = self.conn.recv()
        self.max_open = 0

    def _call(self, *message: Any) -> Any:
        self.conn.send(message)
        reply = self.conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def reset(self) -> None:
        self.max_open = self._call("reset")

    def read_max_open(self) -> int:
        self.max_open = self._call("max_open")
        return self.max_open

    def clients(
        self, url: str, clients: int, per_client: int, tag: str
    ) -> tuple[list[float], list[int], float]:
        lat, statuses, wall, self.max_open = self._call("clients", url, clients, per_client, tag)
        return lat, statuses, wall

    def keep_alive(self, url: str, n: int) -> list[float]:
        result: list[float] = self._call("keep_alive", url, n)
        return result

    def stop(self) -> None:
        self.conn.send(("stop",))
        self.process.join(10)


def _load_main(conn: Any, llm_seconds: float, fixed_reply: bool, query_seconds: float) -> None:
    llm = MockLLM(llm_seconds, fixed_reply=fixed_reply, query_seconds=query_seconds)
    conn.send(llm.base_url)
    try:
        while True:
            kind, *args = conn.recv()
            try:
                if kind == "stop":
                    return
                if kind == "reset":
                    llm.reset()
                    conn.send(llm.max_open)
                elif kind == "max_open":
                    conn.send(llm.max_open)
                elif kind == "clients":
                    lat, statuses, wall = asyncio.run(_clients(*args))
                    conn.send((lat, statuses, wall, llm.max_open))
                elif kind == "keep_alive":
                    conn.send(asyncio.run(_keep_alive(*args)))
            except Exception as exc:  # noqa: BLE001 - raised again in the bench process
                conn.send(exc)
    finally:
        llm.server.stop()


class SyncOnly:
    """The engine without `answer_async`: the conversation then answers in `asyncio.to_thread`, as before #21."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        if name == "answer_async":
            raise AttributeError(name)
        return getattr(self._engine, name)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _clients(url: str, clients: int, per_client: int, tag: str) -> tuple[list[float], list[int], float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as http:

        async def client(c: int) -> list[tuple[float, int]]:
            out = []
            for r in range(per_client):
                question = f"{QUESTIONS[(c + r) % len(QUESTIONS)]} ({tag} client {c} round {r})"
                started = time.perf_counter()
                try:
                    status = (await http.post("/v1/ask", json={"question": question})).status_code
                except httpx.HTTPError:
                    status = 0
                out.append(((time.perf_counter() - started) * 1000, status))
            return out

        started = time.perf_counter()
        results = [x for xs in await asyncio.gather(*(client(c) for c in range(clients))) for x in xs]
        wall = time.perf_counter() - started
    return [ms for ms, _ in results], [s for _, s in results], wall


def _serve(
    engine: Any, settings: Settings, data_dir: Path, name: str
) -> tuple[ThreadedServer, FeedbackStore]:
    feedback = FeedbackStore(f"sqlite:///{data_dir / f'{name}.db'}")
    ctx = build_context(settings, load_tokens(settings), MemoryKV(), engine, feedback)
    door = FrontDoor(settings)
    door.mount_api(create_app(ctx, limit_body=False))
    return ThreadedServer(door.app), feedback


def run_llm_scenarios(
    engine: Engine, settings: Settings, llm: LoadProcess, data_dir: Path, args: Any
) -> None:
    paths = [("answer_async (this tree)", engine)]
    if args.old_path:
        paths.append(("to_thread (pre-#21 path)", SyncOnly(engine)))
    for label, answering in paths:
        server, feedback = _serve(answering, settings, data_dir, label.split()[0])
        try:
            print(f"\n== LLM streaming {args.llm_seconds:.1f} s per answer, {label} ==")
            print(
                "clients  answers  in-flight  answers/s    p50 ms    p95 ms  p50/1-client  CPU cores  errors"
            )
            single_p50 = None
            for clients in args.clients:
                per_client = 3 if clients == 1 else 2
                llm.reset()
                cpu0 = _cpu_s()
                lat, statuses, wall = llm.clients(server.url, clients, per_client, f"{label[:6]}{clients}")
                cpu = (_cpu_s() - cpu0) / wall
                p50 = percentile(lat, 0.5)
                single_p50 = single_p50 or p50
                errors = sum(1 for s in statuses if s != 200)
                print(
                    f"{clients:7d}  {len(lat):7d}  {llm.max_open:9d}  {len(lat) / wall:9.2f}  {p50:8.0f}  "
                    f"{percentile(lat, 0.95):8.0f}  {p50 / single_p50:12.2f}  {cpu:9.2f}  {errors:6d}"
                )
        finally:
            server.stop()
            feedback.close()


def run_no_llm(engine: Engine, settings: Settings, data_dir: Path, load: LoadProcess, args: Any) -> None:
    no_llm = Engine(
        settings.model_copy(update={"openai_base_url": None}),
        store=engine.store,
        embedder=engine.embedder,
        reranker=engine.reranker,
        kv=MemoryKV(),
    )
    paths = [("answer_async (this tree)", no_llm)]
    if args.old_path:
        paths.append(("to_thread (pre-#21 path)", SyncOnly(no_llm)))
    print("\n== no LLM (quoted answers), cache misses: 50 clients x 2 distinct questions ==")
    for label, answering in paths:
        server, feedback = _serve(answering, settings, data_dir, "nollm-" + label.split()[0])
        try:
            load.clients(server.url, 4, 1, "warm")
            cpu0 = _cpu_s()
            lat, statuses, wall = load.clients(server.url, 50, 2, "nollm" + label[:4])
            cpu = (_cpu_s() - cpu0) / wall
            print(
                f"{label}: {len(lat) / wall:.2f} answers/s, p50 {percentile(lat, 0.5):.0f} ms, "
                f"p95 {percentile(lat, 0.95):.0f} ms, CPU {cpu:.2f} cores, errors {sum(s != 200 for s in statuses)}"
            )
        finally:
            server.stop()
            feedback.close()


async def _keep_alive(url: str, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        body = {"question": "How do I get paged when I'm on call? (keep-alive)"}
        assert (await http.post("/v1/ask", json=body)).status_code == 200  # fills the cache
        out = []
        for _ in range(n):
            started = time.perf_counter()
            response = await http.post("/v1/ask", json=body)
            out.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and response.json()["cache_hit"]
    return out


class _NoNodelayServer:
    """The API on a socket made the old way (no IPPROTO_TCP: asyncio leaves Nagle on), for comparison."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def run_keep_alive(engine: Engine, settings: Settings, data_dir: Path, load: LoadProcess) -> None:
    print("\n== cache hit on a kept-alive connection, 200 requests ==")
    server, feedback = _serve(engine, settings, data_dir, "keepalive")
    try:
        lat = load.keep_alive(server.url, 200)
        print(
            f"front door (TCP_NODELAY): p50 {percentile(lat, 0.5):.2f} ms, p95 {percentile(lat, 0.95):.2f} ms"
        )
    finally:
        server.stop()
        feedback.close()
    feedback = FeedbackStore(f"sqlite:///{data_dir / 'keepalive-old.db'}")
    ctx = build_context(settings, load_tokens(settings), MemoryKV(), engine, feedback)
    old = _NoNodelayServer(create_app(ctx))
    try:
        lat = load.keep_alive(old.url, 200)
        print(
            f"socket without IPPROTO_TCP (as before): p50 {percentile(lat, 0.5):.2f} ms, "
            f"p95 {percentile(lat, 0.95):.2f} ms"
        )
    finally:
        old.stop()
        feedback.close()


SLACK_SECRET = "bench-signing-secret"


async def _slack_round(fake: Any, url: str, clients: int, tag: str) -> tuple[list[float], float]:
    """`clients` mentions posted at once, each in its own channel; latency until its final rendered answer."""
    from slack_sdk.signature import SignatureVerifier

    from tests.bot.slack.fake_slack import event_callback, mention

    verifier = SignatureVerifier(SLACK_SECRET)
    posted: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def post(i: int) -> None:
            channel = f"C{tag}{i}"
            question = f"{QUESTIONS[i % len(QUESTIONS)]} ({tag} {i})"
            body = json.dumps(
                event_callback(mention(question, channel=channel, user=f"U{i}", ts=f"{900 + i}.0001"))
            )
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body),
            }
            posted[channel] = time.monotonic()
            assert (await http.post("/slack/events", content=body, headers=headers)).status_code == 200

        started = time.monotonic()
        await asyncio.gather(*(post(i) for i in range(clients)))

        def finals() -> dict[str, float]:
            done: dict[str, float] = {}
            for call in fake.calls_to("chat.update"):
                channel = call.params.get("channel", "")
                if channel in posted and call.params.get("blocks") and channel not in done:
                    done[channel] = call.at
            return done

        done = await fake.wait_for(lambda: len(finals()) == clients and finals(), timeout=600)
    return [(done[c] - posted[c]) * 1000 for c in posted], max(done.values()) - started


def run_slack(engine: Engine, settings: Settings, llm: LoadProcess, args: Any) -> None:
    """The same askers through Slack HTTP mode: signed mentions to /slack/events, answers to a local Slack."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.conversation import Conversation
    from bot.settings import BotSettings
    from bot.slack.app import build_app
    from bot.slack.http import http_app
    from tests.bot.slack.fake_slack import FakeSlack

    async def main() -> None:
        fake = await FakeSlack().start()
        bot_settings = BotSettings(
            **{
                **settings.model_dump(),
                "slack_bot_token": "xoxb-bench",
                "slack_signing_secret": SLACK_SECRET,
                "slack_api_url": fake.api_url,
            }
        )
        conversation = Conversation(engine, bot_settings, MemoryKV())
        app = build_app(
            bot_settings, conversation, client=AsyncWebClient(token="xoxb-bench", base_url=fake.api_url)
        )
        door = FrontDoor(bot_settings)
        door.mount_slack(http_app(app, SLACK_SECRET, bot_settings.slack_max_body_bytes))
        server = await asyncio.to_thread(ThreadedServer, door.app)
        try:
            print(f"\n== Slack HTTP mode, LLM streaming {args.llm_seconds:.1f} s per answer ==")
            print("mentions  in-flight  answers/s    p50 ms    p95 ms  p50/1-mention")
            single = None
            for clients in [c for c in args.clients if c <= 50]:
                llm.reset()
                lat, wall = await _slack_round(fake, server.url, clients, f"s{clients}x")
                await asyncio.to_thread(llm.read_max_open)
                p50 = percentile(lat, 0.5)
                single = single or p50
                print(
                    f"{clients:8d}  {llm.max_open:9d}  {clients / wall:9.2f}  {p50:8.0f}  "
                    f"{percentile(lat, 0.95):8.0f}  {p50 / single:13.2f}"
                )
        finally:
            await asyncio.to_thread(server.stop)
            await fake.stop()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-seconds", type=float, default=2.0)
    parser.add_argument(
        "--multi-query",
        type=int,
        default=Settings.model_fields["multi_query"].default,
        help="phrasings per question (default: the shipped setting; 0 = the question alone, one LLM call)",
    )
    parser.add_argument("--query-llm-seconds", type=float, default=0.5, help="latency of a phrasing call")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50, 100])
    parser.add_argument("--old-path", action="store_true", help="also measure the pre-#21 to_thread path")
    parser.add_argument(
        "--fixed-reply",
        action="store_true",
        help="the mock LLM gives every question the same reply (most fail the citation check and are quoted)",
    )
    parser.add_argument("--skip", default="", help="comma list of parts to skip: llm,nollm,keepalive,slack")
    args = parser.parse_args()
    skip = set(args.skip.split(",")) - {""}
    data_dir = Path(tempfile.mkdtemp(prefix="concurrency-bench-"))
    llm = LoadProcess(args.llm_seconds, args.fixed_reply, args.query_llm_seconds)
    settings = get_settings().model_copy(
        update={
            "data_dir": data_dir,
            "sources": sample_sources(ROOT / "samples"),
            "api_tokens": SecretStr(json.dumps({TOKEN: {"name": "bench", "sources": ["*"]}})),
            "rate_limit_per_minute": 0,
            "daily_spend_cap_usd": 0,
            "redis_url": None,
            "openai_base_url": llm.base_url,
            "openai_api_key": None,
            "llm_model": "bench-model",
            "multi_query": args.multi_query,
            "hyde": False,
            "llm_timeout_s": 120.0,
        }
    )
    engine = Engine.from_settings(settings)
    try:
        for report in run_sync(settings, engine.index_writer()):
            print(f"indexed {report.source}: {report.added} documents")
        print(
            f"reranker: {engine.reranker.name}; answer threads: {settings.answer_threads or 'cores + 2'}; "
            f"answers in flight: {settings.answers_in_flight}; multi-query: {settings.multi_query} phrasings "
            f"({args.query_llm_seconds:.1f} s call)"
        )
        if "llm" not in skip:
            run_llm_scenarios(engine, settings, llm, data_dir, args)
        if "nollm" not in skip:
            run_no_llm(engine, settings, data_dir, llm, args)
        if "keepalive" not in skip:
            run_keep_alive(engine, settings, data_dir, llm)
        if "slack" not in skip:
            run_slack(engine, settings, llm, args)
    finally:
        llm.stop()
        engine.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
