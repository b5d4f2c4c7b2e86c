"""The admin report: exact figures from a seeded query log, the HTML page and the `ragbot report` command."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli_report import report_command
from rag_core.errors import UserError
from rag_core.feedback import FeedbackStore
from rag_core.feedback.report import build_report, render_html, render_text
from rag_core.feedback.report_data import collect
from rag_core.feedback.stats import mann_whitney_u, two_proportion_z_test
from rag_core.questions import normalise_question
from rag_core.settings import Settings
from rag_core.types import Answer, Citation, Vote

NOW = datetime(2025, 5, 10, 12, 0)
DEPLOYS = ("handbook", "eng/deploys", "Deploys", "https://wiki/deploys")
ROLLBACKS = ("handbook", "eng/rollbacks", "Rollbacks", "https://wiki/rollbacks")
EXPENSES = ("drive", "fin/travel", "Travel $100 & $200 <script>alert(1)</script>", "https://drive/travel")
NO_RERANK = {"use_reranker": False}


def seed(store: FeedbackStore) -> None:
    """Eight questions over three days (and one just before them), with votes and two A/B arms."""

    def log(
        day: int,
        hour: int,
        platform,
        channel,
        user,
        question,
        outcome,
        ms,
        cost=0.0,
        docs=(),
        arm=None,
        votes=(),
    ):
        answer = Answer(
            question=question,
            text="…",
            citations=[Citation(n, t, u, "…", 0.5, s, d) for n, (s, d, t, u) in enumerate(docs, start=1)],
            abstained=outcome == "abstained",
            cost_usd=cost,
            timings_ms={"retrieve": ms / 4, "total": ms},
        )
        store.log_answer(
            answer,
            platform=platform,
            channel=channel,
            user=user,
            arm=arm,
            outcome=outcome,
            overrides=NO_RERANK if arm == "b" else ({} if arm else None),
            at=datetime(2025, 5, day, hour),
        )
        for voter, value in votes:
            store.record_vote(Vote(answer.id, voter, value, platform, channel))

    log(
        7, 23, "slack", "C1", "U1", "Old question", "answered", 500, 0.5, [DEPLOYS], "a", [("V9", -1)]
    )  # outside
    # May 8
    log(8, 9, "slack", "C1", "U1", "How do I deploy?", "answered", 1000, 0.01, [DEPLOYS, ROLLBACKS], "a",
        [("V1", 1), ("V2", 1)])  # fmt: skip
    log(8, 10, "slack", "C1", "U2", "Where is the VPN guide?", "abstained", 200, arm="b")
    log(8, 11, "discord", "D1", "U3", "where is the  vpn guide", "abstained", 300, arm="a")
    # May 9
    log(9, 9, "discord", "D1", "U1", "How do I roll back?", "answered", 2000, 0.02, [ROLLBACKS], "b",
        [("V1", -1), ("V3", 1)])  # fmt: skip
    log(9, 10, "slack", "C1", "U4", "Too many questions", "rate_limited", 0)
    # May 10
    log(10, 8, "slack", "C2", "U5", "Where is the VPN guide??", "abstained", 400, arm="b")
    log(
        10,
        9,
        "slack",
        "C2",
        "U5",
        "Expense policy?",
        "answered",
        3000,
        0.03,
        [EXPENSES, DEPLOYS],
        "a",
        [("V4", -1)],
    )
    log(10, 10, "slack", "C2", "U6", "Why?", "error", 100, arm="a")


@pytest.fixture
def seeded(db_url: str) -> FeedbackStore:
    store = FeedbackStore(db_url)
    seed(store)
    yield store
    store.close()


def test_headline_figures(seeded: FeedbackStore) -> None:
    data = collect(seeded.engine, days=3, now=NOW)
    t = data.total
    assert (data.start, [d.day.isoformat() for d in data.days]) == (
        datetime(2025, 5, 8),
        ["2025-05-08", "2025-05-09", "2025-05-10"],
    )
    assert t.questions == 8  # the May 7 question is outside the window
    assert t.by_outcome == {
        "answered": 3,
        "abstained": 3,
        "error": 1,
        "rate_limited": 1,
        "undelivered": 0,
        "busy": 0,
        "cancelled": 0,
    }
    assert (t.up, t.down, t.thumbs_up_rate) == (3, 2, 0.6)
    assert t.abstention_rate == 0.5  # 3 of the 6 answered-or-abstained
    # latencies 200 300 400 1000 2000 3000: p50 between 400 and 1000, p95 three quarters from 2000 to 3000
    assert (t.p50_ms, t.p95_ms) == (700, 2750)
    assert t.cost_usd == pytest.approx(0.06)


def test_figures_per_day(seeded: FeedbackStore) -> None:
    days = collect(seeded.engine, days=3, now=NOW).days
    assert [d.questions for d in days] == [3, 2, 3]
    assert [d.thumbs_up_rate for d in days] == [1.0, 0.5, 0.0]
    assert [d.abstention_rate for d in days] == [pytest.approx(2 / 3), 0.0, 0.5]
    assert [d.cost_usd for d in days] == [pytest.approx(0.01), pytest.approx(0.02), pytest.approx(0.03)]
    # rate-limited and failed questions have no latency worth counting
    assert [(d.p50_ms, d.p95_ms) for d in days] == [(300, pytest.approx(930)), (2000, 2000), (1700, 2870)]


def test_figures_per_channel(seeded: FeedbackStore) -> None:
    channels = collect(seeded.engine, days=3, now=NOW).channels
    assert [(c.platform, c.channel, c.questions, c.votes, c.thumbs_up_rate) for c in channels] == [
        ("slack", "C1", 3, 2, 1.0),
        ("slack", "C2", 3, 1, 0.0),
        ("discord", "D1", 2, 2, 0.5),
    ]


def test_most_cited_sources_and_those_cited_in_thumbs_down_answers(seeded: FeedbackStore) -> None:
    data = collect(seeded.engine, days=3, now=NOW)
    assert [(s.title, s.answers, s.down_answers) for s in data.top_sources] == [
        ("Deploys", 2, 1),
        ("Rollbacks", 2, 1),
        (EXPENSES[2], 1, 1),
    ]
    assert [(s.title, s.down_answers, s.answers) for s in data.down_sources] == [
        ("Deploys", 1, 2),
        ("Rollbacks", 1, 2),
        (EXPENSES[2], 1, 1),
    ]


def test_coverage_gaps_group_the_same_question_worded_differently(seeded: FeedbackStore) -> None:
    gaps = collect(seeded.engine, days=3, now=NOW).gaps
    assert [(g.question, g.count, g.askers, g.last_asked) for g in gaps] == [
        ("Where is the VPN guide??", 3, 3, datetime(2025, 5, 10, 8))
    ]
    assert normalise_question("<@U123>  Where is the VPN   guide?! ") == "where is the vpn guide"


def test_arms_are_compared_with_sample_sizes_and_p_values(seeded: FeedbackStore) -> None:
    data = collect(seeded.engine, days=3, now=NOW)
    a, b = data.arms
    assert (a.arm, a.questions, a.votes, a.up, a.overrides) == ("a", 4, 3, 2, {})
    assert (b.arm, b.questions, b.votes, b.up, b.overrides) == ("b", 3, 2, 1, NO_RERANK)
    assert (a.abstention_rate, b.abstention_rate) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert (a.p50_ms, b.p50_ms) == (1000, 400)
    (comparison,) = data.comparisons
    assert (comparison.control, comparison.arm) == ("a", "b")
    assert comparison.thumbs_up == two_proportion_z_test(1, 2, 2, 3)
    assert comparison.abstention == two_proportion_z_test(2, 3, 1, 3)
    assert comparison.latency == mann_whitney_u([200, 2000, 400], [1000, 300, 3000])
    assert not comparison.thumbs_up.significant()


def test_terminal_summary_reads_well(seeded: FeedbackStore) -> None:
    text = render_text(collect(seeded.engine, days=3, now=NOW))
    assert "2025-05-08 – 2025-05-10 UTC (3 days)" in text
    assert "Questions    8 (answered 3, abstained 3, error 1, rate limited 1)" in text
    assert "👍 rate      60% of 5 votes (3 👍, 2 👎)" in text
    assert "Abstention   50% of 6 replies" in text
    assert "Latency      p50 0.70 s, p95 2.75 s" in text
    assert re.search(r"3\s+3\s+2025-05-10\s+Where is the VPN guide\?\?", text)
    assert "b vs a: 👍 rate p=" in text and "fewer than 30 votes in an arm" in text


def test_html_page_is_self_contained_with_charts_and_escaped_text(
    seeded: FeedbackStore, tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "report.html"
    build_report(seeded, 3, out, now=NOW)
    page = out.read_text(encoding="utf-8")
    # questions/day, rates/day, latency/day, cost/day, 👍 per channel, most cited, cited in 👎 answers
    assert page.count('src="data:image/png;base64,') == 7
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']https?://(?!wiki|drive)""", page)  # nothing loaded from elsewhere
    for heading in ("Coverage gaps", "Sources most often cited in 👎 answers", "A/B experiment", "b vs a"):
        assert heading in page
    assert '<a href="https://wiki/deploys">Deploys</a>' in page
    assert "{&quot;use_reranker&quot;: false}" in page


def test_an_empty_log_renders(sqlite_url: str) -> None:
    with FeedbackStore(sqlite_url) as store:
        data = collect(store.engine, days=7, now=NOW)
    assert data.total.questions == 0 and len(data.days) == 7 and data.total.thumbs_up_rate is None
    assert "No questions in this period." in render_text(data)
    assert "No questions in this period." in render_html(data)


def test_report_command_prints_and_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    with FeedbackStore.from_settings(settings) as store:
        for hours_ago in (1, 30):
            answer = Answer(
                "How do I deploy?", "Run make deploy [1].", [Citation(1, "Deploys", "", "…", 0.7)]
            )
            answer.timings_ms = {"total": 800.0}
            store.log_answer(
                answer,
                platform="slack",
                channel="C1",
                user="U1",
                at=datetime.now(UTC) - timedelta(hours=hours_ago),
            )
            store.record_vote(Vote(answer.id, "U2", 1))

    assert report_command(argparse.Namespace(days=7, out=None), settings) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "data" / "report.html"
    assert "Questions    2 (answered 2)" in printed and "👍 rate      100% of 2 votes" in printed
    assert f"HTML report written to {out}" in printed
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


@pytest.mark.parametrize("days", [0, -3, 100_000])
def test_report_command_refuses_a_bad_day_count(tmp_path: Path, days: int) -> None:
    with pytest.raises(UserError, match=f"--days must be between 1 and 3660, got {days}"):
        report_command(argparse.Namespace(days=days, out=None), Settings(data_dir=tmp_path))


def test_report_command_refuses_a_folder_as_output(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder"):
        report_command(argparse.Namespace(days=3, out=str(tmp_path)), Settings(data_dir=tmp_path))
