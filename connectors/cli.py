"""`ragbot sync [SOURCE] [--full] [--verbose]`: sync now, with a progress bar, a report table and skips by reason."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from connectors.sync import SyncReport, run_sync, select_sources
from rag_core.settings import Settings, get_settings


def sync_command(
    args: argparse.Namespace, settings: Settings | None = None, out: TextIO | None = None
) -> int:
    """Run the sync; 0 when every source synced, 1 when any failed. Bad input raises `UserError`."""
    from rag_core.engine import Engine
    from rag_core.logs import setup_logging

    settings = settings or get_settings()
    out = out or sys.stdout
    setup_logging(settings)
    select_sources(settings, args.source)  # an unknown source fails before the models load
    engine = Engine.from_settings(settings)
    bars: dict[str, tqdm] = {}

    def tick(source: str, done: int, total: int | None) -> None:
        bar = bars.get(source)
        if bar is None:
            bar = bars[source] = tqdm(desc=source, total=total, unit="file", file=sys.stderr, leave=True)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()  # finished: the next source's bar starts below it

    try:
        with logging_redirect_tqdm():  # log lines print above the bars instead of through them
            reports = run_sync(
                settings, engine.index_writer(), source=args.source, full=args.full, on_document=tick
            )
    finally:
        for bar in bars.values():
            bar.close()
        engine.close()
    print(report_table(reports), file=out)
    for report in reports:
        if getattr(args, "verbose", False):
            for path, reason in report.skipped:
                print(f"skipped [{report.source}] {path}: {reason}", file=out)
        else:
            for line in skip_summary(report):
                print(line, file=out)
    return 0 if all(r.ok for r in reports) else 1


def skip_summary(report: SyncReport) -> list[str]:
    """Skipped files counted by reason, most common first (reasons that differ only in numbers, such as sizes,
    count together); `--verbose` lists every file instead."""
    groups: dict[str, list[str]] = {}
    for _, reason in report.skipped:
        groups.setdefault(_NUMBERS.sub("…", reason), []).append(reason)
    lines = [
        f"skipped [{report.source}] {len(reasons):,} × {reasons[0] if len(set(reasons)) == 1 else key}"
        for key, reasons in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    if lines:
        lines.append(f"({len(report.skipped):,} skipped in all; --verbose lists each file and its reason)")
    return lines


_NUMBERS = re.compile(r"\d[\d,.]*\d|\d")


def report_table(reports: list[SyncReport]) -> str:
    """The reports as an aligned text table, one row per source."""
    header = ["source", "added", "updated", "deleted", "unchanged", "skipped", "seconds", "version", "error"]
    rows = [header] + [
        [
            r.source,
            str(r.added),
            str(r.updated),
            str(r.deleted),
            str(r.unchanged),
            str(len(r.skipped)),
            f"{r.duration_s:.1f}",
            "" if r.index_version is None else str(r.index_version),
            r.error or "",
        ]
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
