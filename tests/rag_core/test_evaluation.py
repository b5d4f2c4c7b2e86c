"""The BEIR evaluation ranks through the engine's own `rank()` and scores every mode."""

from __future__ import annotations

import json
from pathlib import Path

from rag_core.engine import Engine
from rag_core.evaluation import MODES, evaluate, index_corpus, load_beir
from rag_core.kv import MemoryKV
from rag_core.store import open_store
from tests.conftest import make_settings


def _beir(folder: Path) -> None:
    corpus = [
        {"_id": "vpn", "title": "VPN", "text": "Reset your VPN key from the portal, then reconnect."},
        {"_id": "dinner", "title": "Expenses", "text": "Team dinners are reimbursed up to $60 per person."},
        {"_id": "laptop", "title": "Laptops", "text": "Request a new laptop through the IT helpdesk form."},
    ]
    queries = [
        {"_id": "q1", "text": "how do I reset the vpn key"},
        {"_id": "q2", "text": "dinner reimbursement"},
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tvpn\t1\nq2\tdinner\t1\n")


def test_evaluate_scores_every_mode_through_the_engine(small_engine: Engine, tmp_path: Path) -> None:
    _beir(tmp_path / "tiny")
    settings = make_settings(tmp_path)
    engine = Engine(
        settings,
        store=open_store(settings),
        embedder=small_engine.embedder,
        reranker=small_engine.reranker,
        kv=MemoryKV(),
    )
    data = load_beir(tmp_path / "tiny", "test")
    index_corpus(engine, data)
    results = {r.mode: r for r in evaluate(engine, data)}
    assert list(results) == list(MODES)
    assert results["hybrid+rerank"].mrr10 == 1.0 and results["hybrid"].recall100 == 1.0
    assert results["hybrid+rerank"].p50_ms > 0
    engine.close()
