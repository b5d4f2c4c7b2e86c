"""The Qdrant server goes away: a short "index unreachable" reply (never silence), /readyz 503, both recover.

qdrant-client talks HTTP to `QdrantStandIn` (see parts.py: no Qdrant server binary exists on this machine).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from qdrant_client import QdrantClient

from bot.conversation import INDEX_UNREACHABLE, Conversation, Question
from rag_core.engine import Engine
from rag_core.feedback.http import serve_health
from rag_core.kv import MemoryKV
from rag_core.store.client import ClientStore
from tests.conftest import make_settings, small_documents
from tests.faults.conftest import RecordingSink, figure
from tests.faults.parts import QdrantStandIn, readyz, wait_until


def models_of(engine: Engine) -> dict[str, object]:
    return {"embedder": engine.embedder, "reranker": engine.reranker, "kv": MemoryKV()}


def ask(conv: Conversation, text: str) -> RecordingSink:
    sink = RecordingSink()
    asyncio.run(conv.ask(Question("slack", text, "U1", "C1"), sink))
    return sink


def test_qdrant_unreachable_says_so_and_recovers(small_engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, qdrant_url="http://set-below", qdrant_timeout_s=1.0)
    local = QdrantClient(":memory:")
    builder = Engine(settings, store=ClientStore(local, settings.collection), **models_of(small_engine))
    with builder.index_writer().begin() as tx:
        for doc in small_documents():
            tx.upsert(doc, "v1")
    server = QdrantStandIn(local)
    server.start()
    store = ClientStore.connect(server.url, settings.collection, timeout_s=1.0)
    engine = Engine(settings, store=store, **models_of(small_engine))
    conv = Conversation(engine, settings, MemoryKV())
    health = serve_health(0, engine, None, host="127.0.0.1")
    try:
        assert ask(conv, "How do I connect to the VPN?").reply[0] == "finished"
        assert readyz(health.url) == 200

        server.stop()
        sink = ask(conv, "Who pays for team dinners?")
        assert sink.reply == ("refused", INDEX_UNREACHABLE)
        assert sink.replied_after_s is not None and sink.replied_after_s < 5
        assert readyz(health.url) == 503

        server.start()
        back = time.monotonic()
        ready_s = wait_until(lambda: readyz(health.url) == 200)
        assert ask(conv, "Who pays for team dinners?").reply[0] == "finished"
        figure("qdrant unreachable", "time to the 'index unreachable' reply", sink.replied_after_s)
        figure("qdrant unreachable", "/readyz 200 again after the server answers", ready_s)
        figure("qdrant unreachable", "server back to first answer", time.monotonic() - back)
    finally:
        health.stop()
        server.stop()
