"""The report's charts as inline PNG data URIs (matplotlib's object API: no pyplot, no display needed)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from rag_core.feedback.report_data import ChannelFigures, DayFigures, SourceCount

OUTCOME_COLOURS = {
    "answered": "#2e7d32",
    "abstained": "#f9a825",
    "error": "#c62828",
    "rate_limited": "#9e9e9e",
    "undelivered": "#6a1b9a",
    "busy": "#616161",
    "cancelled": "#795548",
}
UP, DOWN, BLUE = "#2e7d32", "#c62828", "#1565c0"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _day_axes(title: str, days: Sequence[DayFigures]) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8, 2.8))
    axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    labels = [d.day.strftime("%b %d") for d in days]
    step = max(1, math.ceil(len(days) / 12))  # at most ~12 date labels
    axes.set_xticks(range(0, len(days), step), labels[::step], fontsize=8)
    return figure, axes


def _legend(axes: Axes) -> None:
    axes.legend(
        fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0)
    )  # outside: never on data


def _label(text: str) -> str:
    """Document titles are user text: a `$` must not start matplotlib mathtext."""
    text = text if len(text) <= 48 else text[:47] + "…"
    return text.replace("$", r"\$")


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def questions_per_day(days: Sequence[DayFigures]) -> str:
    figure, axes = _day_axes("Questions per day, by outcome", days)
    bottom = [0] * len(days)
    for outcome, colour in OUTCOME_COLOURS.items():
        counts = [d.by_outcome.get(outcome, 0) for d in days]
        if any(counts):
            axes.bar(range(len(days)), counts, bottom=bottom, color=colour, label=outcome.replace("_", " "))
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _legend(axes)
    return _png(figure)


def rates_per_day(days: Sequence[DayFigures]) -> str:
    """Thumbs-up rate and abstention rate on one chart; days without votes/answers leave gaps."""
    figure, axes = _day_axes("Thumbs-up rate and abstention rate per day", days)
    x = range(len(days))
    axes.plot(x, [_nan(d.thumbs_up_rate) for d in days], "o-", color=UP, label="thumbs-up rate (of votes)")
    axes.plot(x, [_nan(d.abstention_rate) for d in days], "s--", color="#f9a825", label="abstention rate")
    axes.set_ylim(0, 1.05)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    _legend(axes)
    return _png(figure)


def latency_per_day(days: Sequence[DayFigures]) -> str:
    figure, axes = _day_axes("Answer latency per day (seconds)", days)
    x = range(len(days))
    axes.plot(x, [_nan(d.p50_ms) / 1000 for d in days], "o-", color=BLUE, label="p50")
    axes.plot(x, [_nan(d.p95_ms) / 1000 for d in days], "^--", color=DOWN, label="p95")
    axes.set_ylim(bottom=0)
    _legend(axes)
    return _png(figure)


def cost_per_day(days: Sequence[DayFigures]) -> str:
    figure, axes = _day_axes("Estimated LLM cost per day (USD)", days)
    axes.bar(range(len(days)), [d.cost_usd for d in days], color=BLUE)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.2f}"))
    return _png(figure)


def _barh(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    colour: str,
    notes: Sequence[str],
    percent: bool = False,
) -> str:
    figure = Figure(figsize=(8, 0.45 * len(labels) + 0.9))
    axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    y = range(len(labels))
    axes.barh(y, values, color=colour)
    axes.set_yticks(y, [_label(label) for label in labels], fontsize=8)
    axes.invert_yaxis()  # biggest first
    if percent:
        axes.set_xlim(0, 1)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    for i, (value, note) in enumerate(zip(values, notes, strict=True)):
        axes.text(value, i, f" {note}", va="center", fontsize=8)
    return _png(figure)


def thumbs_up_per_channel(channels: Sequence[ChannelFigures]) -> str | None:
    voted = [c for c in channels if c.votes][:12]
    if not voted:
        return None
    figure_html = _barh(
        "Thumbs-up rate per channel",
        [f"{c.platform} {c.channel}" for c in voted],
        [c.thumbs_up_rate or 0.0 for c in voted],
        UP,
        [f"{c.thumbs_up_rate:.0%} of {c.votes} votes" for c in voted],
        percent=True,
    )
    return figure_html


def cited_sources(title: str, sources: Sequence[SourceCount], *, down: bool) -> str | None:
    if not sources:
        return None
    values = [s.down_answers if down else s.answers for s in sources]
    notes = [f"{s.down_answers} of {s.answers}" if down else str(s.answers) for s in sources]
    return _barh(title, [s.title or s.url for s in sources], values, DOWN if down else BLUE, notes)
