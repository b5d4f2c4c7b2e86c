"""`ragbot report [--days N] [--out FILE]`: the CLI side of the admin report (rag_core builds and renders it)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rag_core.errors import UserError
from rag_core.feedback.report import MAX_DAYS, build_report, render_text
from rag_core.feedback.store import FeedbackStore
from rag_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


def report_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """`ragbot report [--days N] [--out FILE]`: print the summary and write the HTML page."""
    settings = settings or get_settings()
    days = getattr(args, "days", 30)
    if days is None or not 1 <= days <= MAX_DAYS:
        raise UserError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    out = Path(getattr(args, "out", None) or settings.data_dir / "report.html")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    from bot.knowledge import report_args

    with FeedbackStore.from_settings(settings) as store:
        data = build_report(store, days, out, knowledge=report_args(settings))
    print(render_text(data, out))
    log.info(
        "report written",
        extra={"event": "report_written", "path": str(out), "questions": data.total.questions},
    )
    return 0
