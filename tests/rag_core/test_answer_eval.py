"""`ragbot eval --qa` scoring on the small engine, bad QA files, and `--from-feedback` from a real query log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from rag_core.answer_eval import QACase, QAResult, format_scores, load_cases, run_cases, score
from rag_core.engine import Engine
from rag_core.feedback.qa_export import export_cases
from rag_core.feedback.store import FeedbackStore
from rag_core.types import Answer, Citation, Vote


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


def test_scores_answers_against_gold_and_references(small_engine: Engine, tmp_path: Path) -> None:
    qa = _write(
        tmp_path / "qa.jsonl",
        [
            {
                "question": "How much does the company pay per person for team dinners?",
                "answerable": True,
                "gold": ["expenses"],
                "answer": "$60 per person",
                "split": "report",
            },
            {
                "question": "How do I reset my VPN?",
                "answerable": True,
                "gold": ["https://drive.example.com/vpn"],
                "split": "report",
            },
            {
                "question": "What is the capital city of Mongolia?",
                "answerable": False,
                "gold": [],
                "split": "report",
            },
            {"question": "Who approves deploys?", "answerable": True, "gold": ["deploy"], "split": "tune"},
        ],
    )
    cases = load_cases(qa, "report")
    assert [c.split for c in cases] == ["report"] * 3
    s = score(run_cases(small_engine.answer, cases))
    assert (s["answerable"], s["unanswerable"]) == (2, 1)
    assert s["gold_cited_any"] == 1.0 and s["gold_cited_first"] == 1.0  # doc id and URL both match
    assert s["abstained_unanswerable"] == 1.0 and s["wrongly_abstained"] == 0.0
    assert s["reference_contained"] == 1.0 and s["with_reference"] == 1
    assert s["citations_per_answer"] >= 1 and s["cost_usd"] == 0.0
    text = format_scores(s, "Answer quality:")
    for label in (
        "gold cited (any rank)",
        "gold cited first",
        "abstained on unanswerable",
        "wrongly abstained on answerable",
        "reference contained",
        "citations per answer",
        "latency p50 / p95",
        "cost",
    ):
        assert label in text


def test_abstained_answers_cite_nothing() -> None:
    cited = [Citation(1, "Expenses", "u", "s", 0.2, doc_id="expenses")]
    case = QACase("q", True, ["expenses"])
    abstained = Answer("q", "I don't know", cited, abstained=True)
    s = score([QAResult(case, abstained, 5.0)])
    assert s["gold_cited_any"] == 0.0 and s["wrongly_abstained"] == 1.0


def test_a_bad_qa_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--qa", str(tmp_path / "missing.jsonl")]) == 2
    assert "QA file not found" in capsys.readouterr().err
    bad = _write(
        tmp_path / "bad.jsonl", [{"question": "q", "answerable": True}, '{"question": "no answerable"}']
    )
    assert main(["eval", "--qa", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not a QA case" in err and "Traceback" not in err
    good = _write(tmp_path / "good.jsonl", [{"question": "q", "answerable": True, "split": "report"}])
    assert main(["eval", "--qa", str(good), "--split", "tune"]) == 2
    assert "no cases with split 'tune'" in capsys.readouterr().err


def test_from_feedback_writes_thumbs_up_as_cases_and_lists_thumbs_down(tmp_path: Path) -> None:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'ragbot.db'}")
    good = Answer(
        "How do I reset my VPN?", "Revoke the key [1].", [Citation(1, "VPN", "u", "s", 0.8, doc_id="vpn")]
    )
    right_abstention = Answer("Capital of Mongolia?", "I don't know", [], abstained=True)
    bad = Answer(
        "Team dinner limit?", "Ask finance [1].", [Citation(1, "Deploy", "u2", "s", 0.4, doc_id="deploy")]
    )
    unvoted = Answer("Anything?", "x", [])
    for answer in (good, right_abstention, bad, unvoted):
        store.log_answer(answer, platform="slack", channel="C1", user="U1")
    store.record_vote(Vote(good.id, "U1", 1))
    store.record_vote(Vote(good.id, "U2", 1))
    store.record_vote(Vote(right_abstention.id, "U1", 1))
    store.record_vote(Vote(bad.id, "U1", -1))
    out = tmp_path / "qa" / "feedback.jsonl"
    written, reviews = export_cases(store, out)
    store.close()
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == 2
    assert cases[0] == {
        "question": good.question,
        "answerable": True,
        "gold": ["vpn"],
        "from_answer": good.id,
    }
    assert cases[1]["answerable"] is False and cases[1]["gold"] == []
    assert [(r.question, r.cited) for r in reviews] == [("Team dinner limit?", ["deploy"])]
    assert [c.question for c in load_cases(out)] == [good.question, right_abstention.question]
