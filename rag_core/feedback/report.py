"""`ragbot report`: a terminal summary and a self-contained HTML page of questions, feedback and coverage gaps."""

from __future__ import annotations

import html
import json
import logging
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rag_core.feedback import charts, report_escalations, report_knowledge
from rag_core.feedback.report_data import ArmComparison, ReportData, collect
from rag_core.feedback.stats import TestResult
from rag_core.feedback.store import FeedbackStore

log = logging.getLogger(__name__)

MAX_DAYS = 3660  # ten years of daily rows is already more than a page can show
MIN_VOTES_PER_ARM = 30  # below this a 👍-rate difference is noise whatever the p-value says


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def seconds(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:.2f} s"


def usd(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def p_value(result: TestResult | None) -> str:
    if result is None:
        return "n/a (no data in one arm)"
    verdict = "significant at 5%" if result.significant() else "not significant"
    return f"p={result.p_value:.3g} ({verdict})"


def _width(text: str) -> int:
    """Terminal columns: emoji such as 👍 take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max(_width(h), *(_width(r[i]) for r in rows)) if rows else _width(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()
    return [line, "  ".join("-" * w for w in widths)] + [
        "  ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def _period(data: ReportData) -> str:
    last = (data.end - timedelta(microseconds=1)).date()
    return f"{data.start.date()} – {last} UTC ({len(data.days)} days)"


def _headline(data: ReportData) -> list[tuple[str, str]]:
    t = data.total
    outcomes = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in t.by_outcome.items() if n)
    return [
        ("Questions", f"{t.questions}" + (f" ({outcomes})" if outcomes else "")),
        ("👍 rate", f"{pct(t.thumbs_up_rate)} of {t.votes} votes ({t.up} 👍, {t.down} 👎)"),
        ("Abstention", f"{pct(t.abstention_rate)} of {t.replied} replies"),
        ("Latency", f"p50 {seconds(t.p50_ms)}, p95 {seconds(t.p95_ms)}"),
        ("Cost", f"{usd(t.cost_usd)} total"),
        ("Cache hits", str(t.cache_hits)),
    ]


def _arm_rows(data: ReportData) -> list[list[str]]:
    return [
        [
            a.arm,
            str(a.questions),
            str(a.votes),
            pct(a.thumbs_up_rate),
            pct(a.abstention_rate),
            seconds(a.p50_ms),
            seconds(a.p95_ms),
            json.dumps(a.overrides, sort_keys=True) if a.overrides else "(defaults)",
        ]
        for a in data.arms
    ]


ARM_HEADERS = ["arm", "questions", "votes", "👍 rate", "abstention", "p50", "p95", "overrides"]


def _comparison_lines(c: ArmComparison, votes: dict[str, int]) -> list[str]:
    lines = [
        f"{c.arm} vs {c.control}: 👍 rate {p_value(c.thumbs_up)}",
        f"{c.arm} vs {c.control}: abstention {p_value(c.abstention)}",
        f"{c.arm} vs {c.control}: latency (Mann–Whitney U) {p_value(c.latency)}",
    ]
    if min(votes.get(c.arm, 0), votes.get(c.control, 0)) < MIN_VOTES_PER_ARM:
        lines.append(
            f"  fewer than {MIN_VOTES_PER_ARM} votes in an arm: treat the 👍 comparison as a hint only"
        )
    return lines


def render_text(data: ReportData, out: Path | None = None) -> str:
    """The terminal summary."""
    lines = [f"ragbot report — {_period(data)}", ""]
    lines += [f"{_pad(label, 12)} {value}" for label, value in _headline(data)]
    if not data.total.questions:
        lines += ["", "No questions in this period."]
    else:
        lines += ["", "Per day"]
        lines += _table(
            ["day", "questions", "👍 rate", "abstention", "p50", "p95", "cost"],
            [
                [str(d.day), str(d.questions), pct(d.thumbs_up_rate), pct(d.abstention_rate)]
                + [seconds(d.p50_ms), seconds(d.p95_ms), usd(d.cost_usd)]
                for d in data.days
                if d.questions
            ],
        )
        lines += ["", "Per channel"]
        lines += _table(
            ["platform", "channel", "questions", "votes", "👍 rate", "abstention"],
            [
                [
                    c.platform,
                    c.channel,
                    str(c.questions),
                    str(c.votes),
                    pct(c.thumbs_up_rate),
                    pct(c.abstention_rate),
                ]
                for c in data.channels
            ],
        )
    if data.top_sources:
        lines += ["", "Most-cited sources"]
        lines += _table(
            ["answers", "source", "title"], [[str(s.answers), s.source, s.title] for s in data.top_sources]
        )
    if data.down_sources:
        lines += ["", "Sources most often cited in 👎 answers"]
        lines += _table(
            ["👎 answers", "of cited", "source", "title"],
            [[str(s.down_answers), str(s.answers), s.source, s.title] for s in data.down_sources],
        )
    if data.gaps:
        lines += ["", "Coverage gaps: most frequent unanswered questions"]
        lines += _table(
            ["asked", "people", "last asked", "question"],
            [[str(g.count), str(g.askers), f"{g.last_asked:%Y-%m-%d}", g.question] for g in data.gaps],
        )
    if data.escalations.total:
        per_channel, questions = report_escalations.text_rows(data.escalations)
        lines += ["", "Hand-offs to a person, per channel"]
        lines += _table(report_escalations.CHANNEL_HEADERS, per_channel)
        lines += ["", "Escalated questions (newest first)"]
        lines += _table(report_escalations.QUESTION_HEADERS, questions)
    lines += _knowledge_text(data)
    if data.arms:
        lines += ["", "A/B experiment"]
        lines += _table(ARM_HEADERS, _arm_rows(data))
        votes = {a.arm: a.votes for a in data.arms}
        for comparison in data.comparisons:
            lines += _comparison_lines(comparison, votes)
    if out is not None:
        lines += ["", f"HTML report written to {out}"]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#222;
padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.period{color:#666;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:9rem}
.card .v{font-size:1.4rem;font-weight:600}.card .l{color:#666;font-size:.85rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}td,th{padding:.25rem .6rem;text-align:left;
border-bottom:1px solid #eee}th{background:#f6f6f6}td.n{text-align:right}img{max-width:100%}
.note{color:#666;font-size:.85rem}.sig{color:#2e7d32;font-weight:600}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(uri: str | None, alt: str) -> str:
    return f'<p><img src="{uri}" alt="{_e(alt)}"></p>' if uri else ""


def _link(title: str, url: str) -> str:
    if url.startswith(("http://", "https://")):
        return f'<a href="{_e(url)}">{_e(title or url)}</a>'
    return _e(title or url)


def _html_p(result: TestResult | None) -> str:
    text = _e(p_value(result))
    return f'<span class="sig">{text}</span>' if result and result.significant() else text


def render_html(data: ReportData, generated: datetime | None = None) -> str:
    """A self-contained page: charts are inline PNGs, user text is escaped."""
    generated = generated or datetime.now(UTC)
    t = data.total
    cards = [
        (str(t.questions), "questions"),
        (pct(t.thumbs_up_rate), f"👍 rate ({t.votes} votes)"),
        (pct(t.abstention_rate), "abstention rate"),
        (seconds(t.p50_ms), "p50 latency"),
        (seconds(t.p95_ms), "p95 latency"),
        (usd(t.cost_usd), "estimated cost"),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>ragbot report — {_e(_period(data))}</title><style>{_CSS}</style></head><body>",
        "<h1>ragbot report</h1>",
        f"<p class='period'>{_e(_period(data))} · generated {generated:%Y-%m-%d %H:%M} UTC</p>",
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><div class='v'>{_e(v)}</div><div class='l'>{_e(label)}</div></div>"
            for v, label in cards
        )
        + "</div>",
    ]
    if not t.questions:
        parts.append("<p>No questions in this period.</p></body></html>")
        return "".join(parts)

    parts += [
        "<h2>Activity</h2>",
        _img(charts.questions_per_day(data.days), "questions per day by outcome"),
        _img(charts.rates_per_day(data.days), "thumbs-up rate and abstention rate per day"),
        _img(charts.latency_per_day(data.days), "p50 and p95 latency per day"),
        _img(charts.cost_per_day(data.days), "estimated cost per day"),
        "<h2>Channels</h2>",
        _img(charts.thumbs_up_per_channel(data.channels), "thumbs-up rate per channel"),
        _html_table(
            ["platform", "channel", "questions", "votes", "👍 rate", "abstention", "p50", "p95"],
            [
                [_e(c.platform), _e(c.channel), str(c.questions), str(c.votes), pct(c.thumbs_up_rate)]
                + [pct(c.abstention_rate), seconds(c.p50_ms), seconds(c.p95_ms)]
                for c in data.channels
            ],
        ),
        "<h2>Sources</h2>",
        _img(
            charts.cited_sources("Most-cited sources (answers citing them)", data.top_sources, down=False),
            "most-cited sources",
        ),
        _html_table(
            ["answers", "source", "document"],
            [[str(s.answers), _e(s.source), _link(s.title, s.url)] for s in data.top_sources],
        ),
    ]
    if data.down_sources:
        parts += [
            "<h3>Sources most often cited in 👎 answers</h3>",
            "<p class='note'>Answers with at least one 👎 that cite the document, of all answers citing it: "
            "pages to check for stale or misleading content.</p>",
            _img(
                charts.cited_sources("Cited in thumbs-down answers", data.down_sources, down=True),
                "sources cited in thumbs-down answers",
            ),
            _html_table(
                ["👎 answers", "of cited", "source", "document"],
                [
                    [str(s.down_answers), str(s.answers), _e(s.source), _link(s.title, s.url)]
                    for s in data.down_sources
                ],
            ),
        ]
    parts.append("<h2>Coverage gaps</h2>")
    if data.gaps:
        parts += [
            "<p class='note'>The most frequent questions the bot could not answer from the docs: what the docs are "
            "missing.</p>",
            _html_table(
                ["asked", "people", "last asked", "question"],
                [
                    [str(g.count), str(g.askers), f"{g.last_asked:%Y-%m-%d}", _e(g.question)]
                    for g in data.gaps
                ],
            ),
        ]
    else:
        parts.append("<p>No unanswered questions in this period.</p>")
    if data.escalations.total:
        per_channel, questions = report_escalations.text_rows(data.escalations)
        parts += [
            "<h2>Hand-offs to a person</h2>",
            "<p class='note'>Questions people asked a person about after the bot's answer (or its “I don't "
            "know”): another coverage-gap signal.</p>",
            _html_table(report_escalations.CHANNEL_HEADERS, [[_e(v) for v in r] for r in per_channel]),
            _html_table(report_escalations.QUESTION_HEADERS, [[_e(v) for v in r] for r in questions]),
        ]
    parts += _knowledge_html(data)
    if data.arms:
        votes = {a.arm: a.votes for a in data.arms}
        parts += [
            "<h2>A/B experiment</h2>",
            _html_table(ARM_HEADERS, [[_e(cell) for cell in row] for row in _arm_rows(data)]),
        ]
        for c in data.comparisons:
            rows = [
                ["👍 rate (two-proportion z-test)", _html_p(c.thumbs_up)],
                ["abstention (two-proportion z-test)", _html_p(c.abstention)],
                ["latency (Mann–Whitney U)", _html_p(c.latency)],
            ]
            parts += [
                f"<h3>{_e(c.arm)} vs {_e(c.control)}</h3>",
                _html_table(["metric", "two-sided p-value"], rows),
            ]
            if min(votes.get(c.arm, 0), votes.get(c.control, 0)) < MIN_VOTES_PER_ARM:
                parts.append(
                    f"<p class='note'>Fewer than {MIN_VOTES_PER_ARM} votes in an arm: treat the 👍 comparison as a "
                    "hint only.</p>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)


def _knowledge_text(data: ReportData) -> list[str]:
    k = data.knowledge
    lines: list[str] = []
    if k.review:
        lines += [
            "",
            "Review queue: questions abstained on or 👎'd, similar ones together (answer and save these)",
        ]
        lines += _table(
            report_knowledge.REVIEW_HEADERS[:-1], [r[:-1] for r in report_knowledge.review_rows(k)]
        )
    if k.curated:
        lines += ["", "Curated answers: times cited in this period, votes on those answers, age and flags"]
        lines += _table(report_knowledge.CURATED_HEADERS, report_knowledge.curated_rows(k))
    return lines


def _knowledge_html(data: ReportData) -> list[str]:
    k = data.knowledge
    parts: list[str] = []
    if k.review:
        rows = [
            [*(_e(v) for v in r[:-2]), _e(r[-2]), _link("open", r[-1]) if r[-1] else ""]
            for r in report_knowledge.review_rows(k)
        ]
        parts += [
            "<h2>Review queue</h2>",
            "<p class='note'>Questions the bot said “I don't know” to, or whose answer got a 👎, grouped with "
            "similar questions: answer the biggest groups and save the answers (docs/knowledge.md).</p>",
            _html_table(report_knowledge.REVIEW_HEADERS, rows),
        ]
    if k.curated:
        note = "" if k.versions_known else " Cited pages were not compared with the index (it was not open)."
        parts += [
            "<h2>Curated answers</h2>",
            f"<p class='note'>How often each saved answer was cited in this period, the votes on those answers, "
            f"its age, and whether it is old or the pages its thread cited have changed since.{note}</p>",
            _html_table(
                report_knowledge.CURATED_HEADERS,
                [[_e(v) for v in r] for r in report_knowledge.curated_rows(k)],
            ),
        ]
    return parts


def build_report(
    store: FeedbackStore,
    days: int,
    out: Path,
    now: datetime | None = None,
    *,
    knowledge: dict[str, Any] | None = None,
) -> ReportData:
    """Collect the figures and write the HTML page; returns the figures."""
    data = collect(store.engine, days, now, knowledge=knowledge)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a page
    return data
