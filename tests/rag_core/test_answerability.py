"""The answerability score's signals, quoting from the best source first, the trade-off curve and
`ragbot calibrate` end to end on a tiny index."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from rag_core.answer_eval import QACase, QAResult
from rag_core.answerability import (
    Evidence,
    expected_type,
    features,
    quoted_sentences,
    score,
    sentence_similarities,
    term_weights,
    type_missing,
)
from rag_core.calibration import choose, curve, write_env
from rag_core.engine import Engine
from rag_core.generation import extractive_answer
from rag_core.packing import ContextBlock
from rag_core.settings import get_settings
from rag_core.sparse import Bm25Encoder
from rag_core.types import Answer, Chunk
from tests.conftest import engine_with, make_settings, small_documents

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Bm25Encoder:
    return Bm25Encoder(make_settings(tmp_path_factory.mktemp("sparse")))


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who approves production deploys?", "person"),
        ("Whose signature does the contract need?", "person"),
        ("When does open season start?", "date"),
        ("In which year was the office opened?", "date"),
        ("What year was the office opened?", "date"),
        ("How many days of leave do I get?", "amount"),
        ("How much is the monthly stipend?", "amount"),
        ("How often must I change my password?", "amount"),
        ("Is it true that the policy covers contractors?", None),
        ("Which tool do we use for surveys?", None),
    ],
)
def test_the_expected_answer_type_comes_from_the_question_form(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


def test_a_missing_answer_type_is_flagged_only_when_one_is_expected() -> None:
    assert type_missing("How many days of leave do I get?", ["Leave is planned with your lead."]) == 1.0
    assert type_missing("How many days of leave do I get?", ["You get 30 days a year."]) == 0.0
    assert type_missing("How many days of leave do I get?", ["You get thirty days."]) == 0.0
    assert type_missing("When does open season start?", ["It starts in November."]) == 0.0
    assert type_missing("When does open season start?", ["Ask the benefits team."]) == 1.0
    assert (
        type_missing("Who approves deploys?", ["Deploys are approved by Dana on the platform team."]) == 0.0
    )
    assert type_missing("Who approves deploys?", ["deploys are approved after review."]) == 1.0
    assert type_missing("Does the policy cover contractors?", ["Nothing here."]) == 0.0


def test_rare_terms_among_the_candidates_weigh_more_than_the_shared_topic(sparse: Bm25Encoder) -> None:
    wanted = set(sparse.encode_query("leave japan").indices)
    leave, japan = (set(sparse.encode_query(w).indices) for w in ("leave", "japan"))
    pool = [leave, leave, leave, leave | japan]
    weights = term_weights(wanted, pool)
    assert weights[next(iter(japan))] > weights[next(iter(leave))] > 0


def _evidence(question: str, quoted: list[str], blocks: list[str], **kw: object) -> Evidence:
    return Evidence(question=question, quoted=quoted, blocks=blocks, **kw)  # type: ignore[arg-type]


def test_coverage_is_weighted_by_rarity_and_names_need_no_word_list(sparse: Bm25Encoder) -> None:
    pool = [
        "Travel policy: per diem rates.",
        "Travel booking and per diem.",
        "Per diem for Canada is listed.",
    ]
    answered = _evidence(
        "What is the per diem for Canada?", ["Per diem for Canada is listed."], pool[2:], pool=pool
    )
    missing = _evidence(
        "What is the per diem for Japan?", ["Travel policy: per diem rates."], pool[:1], pool=pool
    )
    a, m = features(answered, sparse), features(missing, sparse)
    assert (
        a["cov_quoted"] == 1.0 and m["cov_quoted"] < 0.5
    )  # "japan" is rarer than "per diem": it weighs more
    assert (
        a["missing_names"] == 0.0 and m["missing_names"] == 1.0
    )  # "Japan" is a name; "What" starts the question
    assert score(a) > score(m)


def test_relevance_margin_and_sentence_similarity_features(sparse: Bm25Encoder) -> None:
    ev = _evidence("q", ["s"], ["b"], relevances=[0.5, 0.8, 0.2], sentence_sims=[0.1, 0.7])
    f = features(ev, sparse)
    assert f["relevance"] == 0.8 and f["margin"] == pytest.approx(0.3) and f["sentence_sim"] == 0.7
    assert features(_evidence("q", [], []), sparse)["sentence_sim"] == 0.0


def test_sentence_similarity_is_the_cosine_with_each_sentence() -> None:
    vectors = {"q": [1.0, 0.0], "same": [2.0, 0.0], "other": [0.0, 3.0]}
    sims = sentence_similarities(
        "q",
        ["same", "other"],
        lambda t: np.asarray(vectors[t]),
        lambda ts: np.asarray([vectors[t] for t in ts]),
    )
    assert sims == pytest.approx([1.0, 0.0])
    assert sentence_similarities("q", [], lambda t: None, lambda ts: None) == []


def test_evidence_round_trips_through_json() -> None:
    ev = _evidence("q", ["a"], ["b"], pool=["c"], relevances=[0.5], sentence_sims=[0.25])
    assert Evidence.from_json(json.loads(json.dumps(ev.to_json()))) == ev


def test_quoted_sentences_drop_their_citation_markers() -> None:
    text = "_label_\n> First sentence here. [1]\n> Second one [2]\nnot quoted"
    assert quoted_sentences(text) == ["First sentence here.", "Second one"]


def _block(n: int, title: str, body: str) -> ContextBlock:
    chunk = Chunk(
        doc_id=title, source="s", title=title, text=body, url=f"https://x/{n}", heading_path=[], position=0
    )
    return ContextBlock(n=n, chunks=[chunk], text=f"[{n}] {title}\n{body}", score=1.0 / n)


def test_the_top_source_is_quoted_first_unless_it_holds_none_of_the_question_terms(
    sparse: Bm25Encoder,
) -> None:
    question = "How many vacation days do new hires get in their first year?"
    top = _block(1, "Leave", "New hires accrue vacation days monthly. Ask your lead before booking.")
    lower = _block(
        2,
        "Onboarding",
        "New hires get vacation days in their first year as listed. "
        "In the first year new hires get many vacation days. Vacation days for new hires in the first year vary.",
    )
    text = extractive_answer(question, [top, lower], sparse, 2)
    lines = [line for line in text.splitlines() if line.startswith("> ")]
    assert lines[0].endswith("[1]") and "accrue vacation days" in lines[0]
    old = extractive_answer(question, [top, lower], sparse, 2, top_first=False)
    assert all(line.endswith("[2]") for line in old.splitlines() if line.startswith("> "))  # the old order
    unrelated = _block(1, "Lunch", "The cafeteria opens at noon on weekdays.")
    text = extractive_answer(question, [unrelated, lower], sparse, 2)
    assert "[1]" not in text  # the top source holds none of the question's terms: it is skipped


def _result(answerable: bool, score_: float | None, abstained: bool = False) -> QAResult:
    answer = Answer("q", "t", [], abstained=abstained, answerability=score_)
    return QAResult(QACase("q", answerable), answer, 1.0)


def test_the_curve_and_the_highest_safe_threshold() -> None:
    results = [_result(True, s) for s in (0.9, 0.8, 0.7, 0.6, 0.35)]
    results += [_result(False, s) for s in (0.1, 0.3, 0.5)] + [_result(False, None, abstained=True)]
    points = curve(results, grid=(0.0, 0.2, 0.4, 0.6, 0.8))
    by_t = {p.threshold: p for p in points}
    assert (
        by_t[0.0].wrongly_abstained == 0.0 and by_t[0.0].abstained_unanswerable == 0.25
    )  # threshold abstained
    assert by_t[0.4].wrongly_abstained == 0.2 and by_t[0.4].abstained_unanswerable == 0.75
    assert choose(points, 0.05).threshold == 0.2
    assert choose(points, 0.2).threshold == 0.6
    only_answerable = curve([_result(True, 0.5)], grid=(0.0, 0.6))
    assert (
        only_answerable[1].abstained_unanswerable is None and choose(only_answerable, 0.05).threshold == 0.0
    )


def test_write_env_replaces_the_line_or_appends_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    assert (
        write_env(env, 0.3) == "RAG_ANSWERABILITY_MIN=0.3"
        and env.read_text() == "RAG_ANSWERABILITY_MIN=0.3\n"
    )
    env.write_text("RAG_TOP_K=5\nexport RAG_ANSWERABILITY_MIN=0.46\nRAG_X=1")
    write_env(env, 0.12)
    assert env.read_text() == "RAG_TOP_K=5\nRAG_ANSWERABILITY_MIN=0.12\nRAG_X=1"
    env.write_text("RAG_TOP_K=5")
    write_env(env, 0.2)
    assert env.read_text() == "RAG_TOP_K=5\nRAG_ANSWERABILITY_MIN=0.2\n"


@pytest.fixture
def indexed_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    data = tmp_path / "data"
    engine = Engine.from_settings(make_settings(data))
    with engine.index_writer().begin() as tx:
        for doc in small_documents():
            tx.upsert(doc, "v1")
    engine.close()
    for name, value in {
        "RAG_DATA_DIR": str(data),
        "RAG_RERANK_MODEL": "",
        "RAG_LOG_JSON": "false",
        "RAG_EMBEDDING_BACKEND": "fp32",
        "RAG_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # calibrate never calls an LLM, even when one is set
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAG_QDRANT_URL", raising=False)
    monkeypatch.delenv("RAG_REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    root.handlers[:], root.level = saved[0], saved[1]


def test_calibrate_writes_the_threshold_from_feedback_style_cases(
    indexed_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = indexed_env / "feedback.jsonl"  # the shape `ragbot eval --from-feedback` writes
    cases = [
        {
            "question": "How much is reimbursed for a team dinner?",
            "answerable": True,
            "gold": ["expenses"],
            "from_answer": "a1",
        },
        {"question": "How do I reset my VPN?", "answerable": True, "gold": ["vpn"], "from_answer": "a2"},
        {
            "question": "How much are team dinners reimbursed in Lisbon?",
            "answerable": False,
            "gold": [],
            "from_answer": "a3",
        },
    ]
    qa.write_text("".join(json.dumps(c) + "\n" for c in cases))
    env = indexed_env / ".env"
    env.write_text("RAG_TOP_K=5\n")
    assert main(["calibrate", "--qa", str(qa), "--env-file", str(env)]) == 0
    out = capsys.readouterr().out
    assert "abstained on unanswerable" in out and "<- chosen" in out
    line = re.search(r"^RAG_ANSWERABILITY_MIN=([0-9.]+)$", env.read_text(), re.M)
    assert line is not None and env.read_text().startswith("RAG_TOP_K=5\n")
    chosen = float(line.group(1))
    assert f"wrote RAG_ANSWERABILITY_MIN={chosen:g}" in out
    assert 0.0 < chosen < 1.0  # both answerable questions keep being answered at the chosen threshold

    assert main(["calibrate", "--qa", str(qa), "--print-only", "--env-file", str(indexed_env / "none")]) == 0
    assert f"RAG_ANSWERABILITY_MIN={chosen:g}" in capsys.readouterr().out
    assert not (indexed_env / "none").exists()


def test_eval_prints_the_trade_off_curve(
    indexed_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAG_OPENAI_BASE_URL")
    get_settings.cache_clear()
    qa = indexed_env / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "How do I reset my VPN?", "answerable": True, "gold": ["vpn"]})
        + "\n"
        + json.dumps({"question": "How much are team dinners reimbursed in Lisbon?", "answerable": False})
        + "\n"
    )
    assert main(["eval", "--qa", str(qa)]) == 0
    out = capsys.readouterr().out
    assert "Answerability trade-off" in out and "<- current" in out
    assert re.search(r"^\s+0\.00\s+[0-9.]+\s+0\.000$", out, re.M)  # threshold 0: nothing wrongly abstained


def test_calibrate_needs_answerable_questions(indexed_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qa = indexed_env / "qa.jsonl"
    qa.write_text(json.dumps({"question": "Capital of Mongolia?", "answerable": False, "gold": []}) + "\n")
    assert main(["calibrate", "--qa", str(qa)]) == 2
    assert "no answerable questions" in capsys.readouterr().err


def test_no_corpus_specific_names_in_the_engine() -> None:
    names = re.compile(r"Sourcegraph|\b18F\b|\bGSA\b|\bTTS\b|SciFact", re.I)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "rag_core").rglob("*.py")
        if names.search(re.sub(r"#.*", "", p.read_text(encoding="utf-8")))  # comments may cite dev sets
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("dev_set", "corpus"), [("18f-qa", "18f-handbook"), ("handbook-qa", "sourcegraph-handbook")]
)
def test_the_dev_sets_hold_against_their_corpus(dev_set: str, corpus: str) -> None:
    folder = ROOT.parent / "shared" / "corpora" / corpus / "content"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here (the shared corpora sit beside the repository)")
    check = subprocess.run(
        [sys.executable, str(ROOT / "eval" / dev_set / "check.py"), str(folder)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "; 0 problems" in check.stdout, check.stdout[-2000:]


def test_the_scifact_set_hides_the_unanswerable_claims_abstracts() -> None:
    cases = [
        json.loads(line) for line in (ROOT / "eval" / "scifact-qa" / "dev.jsonl").read_text().splitlines()
    ]
    indexed = set((ROOT / "eval" / "scifact-qa" / "index.txt").read_text().split())
    assert sum(c["answerable"] for c in cases) == 40 and len(cases) == 80
    assert all(set(c["gold"]) <= indexed for c in cases if c["answerable"])
    assert not any(set(c["hidden"]) & indexed for c in cases if not c["answerable"])


def test_top_over_pool_is_relative_to_the_questions_own_candidates(sparse: Bm25Encoder) -> None:
    pool = ["Travel policy overview.", "Booking travel.", "Per diem for Japan is $60.", "Office plants."]
    question = "What is the per diem for Japan?"
    top_holds = features(_evidence(question, [pool[2]], [pool[2], pool[0]], pool=pool), sparse)
    top_lacks = features(_evidence(question, [pool[0]], [pool[0], pool[2]], pool=pool), sparse)
    # the top source holds every rare word the median candidate lacks: 1.0 over it; a topical one: 0
    assert top_holds["top_over_pool"] == pytest.approx(1.0) and top_lacks["top_over_pool"] == pytest.approx(
        0.0
    )


def test_every_feature_name_a_weight_may_have_is_one_the_score_computes(small_engine: Engine) -> None:
    from rag_core.answerability import FEATURE_NAMES, Evidence, features
    from rag_core.soft_match import evidence_static_words, evidence_words

    embedder, sparse = small_engine.embedder, small_engine.sparse
    question = "Who is paged when the primary on-call engineer does not acknowledge in 5 minutes?"
    quoted = ["The secondary on-call engineer is paged.", "Pages escalate after 5 minutes."]
    blocks = ["Paging policy: the secondary is paged after 5 minutes.", "Deploys are frozen on Fridays."]
    evidence = Evidence(
        question=question,
        quoted=quoted,
        blocks=blocks,
        pool=blocks,
        relevances=[0.6, 0.3],
        sentence_sims=[0.5, 0.4],
        words=evidence_words(question, quoted, blocks[:1], embedder.encode_tokens, sparse),
        static=evidence_static_words(question, quoted, blocks, embedder.word_vectors, sparse),
    )
    assert set(features(evidence, sparse)) | {"bias"} == FEATURE_NAMES


def test_a_weight_naming_no_feature_is_refused_at_start(small_engine: Engine) -> None:
    from rag_core.answerability import WEIGHTS
    from rag_core.errors import UserError

    weights = {**WEIGHTS, "soft_qouted": 1.0}  # a typo would weigh nothing, silently
    with pytest.raises(UserError, match="soft_qouted"):
        engine_with(small_engine, answerability_weights=weights)


def test_how_far_the_top_source_stands_above_the_other_kept_ones(sparse: Bm25Encoder) -> None:
    stands_out = features(_evidence("q", ["s"], ["b"], relevances=[0.8, 0.5, 0.2]), sparse)
    # scaled by 5: cosine gaps of a few tenths weigh like the other features of about [0, 1]
    assert stands_out["top_over_rest"] == pytest.approx(5 * (0.8 - 0.35))
    assert stands_out["relevance_spread"] == pytest.approx(5 * (0.8 - 0.2))
    alone = features(_evidence("q", ["s"], ["b"], relevances=[0.8]), sparse)
    assert alone["top_over_rest"] == 0.0 and alone["relevance_spread"] == 0.0
    # the same top source among equally relevant ones: the shipped score trusts it less
    level = features(_evidence("q", ["s"], ["b"], relevances=[0.8, 0.79, 0.78]), sparse)
    assert score(stands_out) > score(level)
