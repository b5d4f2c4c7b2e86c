"""Issue 23, item 16: the default reranker is the one that runs (score fusion), a configured cross-encoder that
does not load warns once, and terminal commands print readable warnings and errors, not JSON info lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.cli import main
from rag_core import rerank
from rag_core.rerank import FusionReranker, load_reranker
from rag_core.settings import Settings, get_settings


def test_the_default_reranker_is_score_fusion_and_loads_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        reranker = load_reranker(Settings(_env_file=None, data_dir=tmp_path))
    assert isinstance(reranker, FusionReranker)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_cross_encoder_that_does_not_load_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rerank, "_warned", set())
    settings = Settings(_env_file=None, data_dir=tmp_path, rerank_model=str(tmp_path / "no-such-model"))
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert isinstance(load_reranker(settings), FusionReranker)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "score fusion" in warnings[0].getMessage()


def _tiny_beir(root: Path) -> Path:
    docs = {
        "d1": ("VPN reset", "To reset your VPN, open the client and choose Reset profile."),
        "d2": ("Expenses", "Team dinners are reimbursed up to 60 dollars per person."),
        "d3": ("On call", "The on-call engineer is paged through the incident tool."),
    }
    queries = {"q1": "how do I reset my VPN", "q2": "dinner reimbursement per person", "q3": "who gets paged"}
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    return root


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    for name in (
        "RAG_RERANK_MODEL",
        "RAG_LOG_JSON",
        "RAG_LOG_LEVEL",
        "RAG_QDRANT_URL",
        "RAG_OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)  # the defaults: JSON logs at INFO, the default reranker
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    root.handlers[:], root.level = saved


def test_eval_prints_its_table_and_no_log_lines_and_log_json_brings_them_back(
    terminal: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_beir(tmp_path / "beir")
    assert main(["eval", "--beir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "nDCG@10" in out or "ndcg" in out.lower()
    assert not [line for line in err.splitlines() if line.lstrip().startswith("{")], err[:500]
    assert "cross-encoder" not in err and "score fusion instead" not in err

    assert main(["eval", "--beir", str(data), "--log-json"]) == 0
    _, err = capsys.readouterr()
    assert [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_terminal_warnings_are_readable_lines(
    terminal: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_core.logs import set_log_mode, setup_logging

    set_log_mode("terminal")
    try:
        setup_logging(get_settings())
        logging.getLogger("x").info("not shown", extra={"event": "e"})
        logging.getLogger("x").warning("cross-encoder not loaded", extra={"event": "e", "model": "m"})
    finally:
        set_log_mode(None)
    err = capsys.readouterr().err
    assert err == "warning: cross-encoder not loaded (model=m)\n"
