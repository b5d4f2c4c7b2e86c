"""`ragbot knowledge add|list|remove|export|import`: curated answers from the terminal (the operator is admin).

Changes are synced into the index at once (`--no-sync`: only the query log is written; `ragbot sync answers`
indexes them later). Reading needs no models; writing loads the engine to sync.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rag_core.errors import UserError

if TYPE_CHECKING:  # loaded when the command runs, so `ragbot --help` stays fast
    from rag_core.feedback import FeedbackStore
    from rag_core.feedback.curated import CuratedAnswer
    from rag_core.settings import Settings


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """The `knowledge` subcommand and its own subcommands (`parents`: the options every command takes)."""
    kn = sub.add_parser(
        "knowledge",
        help="curated answers: add, list, remove, export, import (docs/knowledge.md)",
        parents=parents,
    )
    ksub = kn.add_subparsers(dest="knowledge_command", required=True)
    add = ksub.add_parser("add", help="save an answer to a question; it is cited from then on")
    add.add_argument("question")
    add.add_argument("answer")
    add.add_argument("--by", required=True, help="who answered (shown in citations: “Answered by NAME”)")
    add.add_argument("--link", default="", help="link to where it was answered (a thread URL)")
    add.add_argument(
        "--readers",
        default=None,
        help="only these may read it: comma-separated user:<email>/group:<name> (default: everyone)",
    )
    ksub.add_parser("list", help="one line per saved answer, its id first")
    rm = ksub.add_parser("remove", help="remove a saved answer by id")
    rm.add_argument("id")
    ksub.add_parser("export", help="every saved answer as JSON lines on stdout")
    imp = ksub.add_parser("import", help="add (or replace, by id) answers from a JSONL file ('-' = stdin)")
    imp.add_argument("file")
    for p in (add, rm, imp):
        p.add_argument(
            "--no-sync", action="store_true", help="write the query log only; index at the next sync"
        )
    kn.set_defaults(func=knowledge_command)


def knowledge_command(
    args: argparse.Namespace, settings: Settings | None = None, out: TextIO | None = None
) -> int:
    from rag_core.feedback import FeedbackStore
    from rag_core.feedback import curated as cur
    from rag_core.settings import get_settings

    settings = settings or get_settings()
    out = out or sys.stdout
    with FeedbackStore.from_settings(settings) as store:
        command = args.knowledge_command
        try:
            if command == "list":
                for saved in cur.list_answers(store):
                    print(list_line(saved, settings), file=out)
                return 0
            if command == "export":
                for line in cur.export_lines(store):
                    print(line, file=out)
                return 0
            if command == "add":
                readers = [r for r in args.readers.split(",")] if args.readers else None
                saved = cur.add_answer(
                    store, args.question, args.answer, author=args.by, thread_url=args.link, readers=readers
                )
                print(f"saved {saved.id}", file=out)
            elif command == "remove":
                if not cur.remove_answer(store, args.id):
                    raise UserError(f"no saved answer with id {args.id!r} (see `ragbot knowledge list`)")
                print(f"removed {args.id}", file=out)
            elif command == "import":
                added, replaced = cur.import_lines(store, _lines(args.file))
                print(f"imported {added} new, {replaced} replaced", file=out)
        except cur.CuratedError as exc:
            raise UserError(str(exc)) from None
        if getattr(args, "no_sync", False):
            print("not synced: run `ragbot sync " + settings.knowledge_source + "` to index it", file=out)
            return 0
        return _sync(store, settings, out)


def list_line(saved: CuratedAnswer, settings: Settings) -> str:
    """`id  date  age  by  [readers]  question` on one line."""
    from connectors.curated import when
    from rag_core.feedback import curated as cur

    age = f"{saved.age_days()}d"
    if cur.older_than(saved, settings.knowledge_max_age_days):
        age += " STALE"
    who = ",".join(saved.readers) if saved.readers is not None else "everyone"
    question = " ".join(saved.question.split())
    return f"{saved.id}  {when(saved.updated_at)}  {age}  by {saved.author}  [{who}]  {question}"


def _lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _sync(store: FeedbackStore, settings: Settings, out: TextIO) -> int:
    from connectors.curated import sync_curated
    from rag_core.engine import Engine
    from rag_core.logs import setup_logging

    setup_logging(settings)
    engine = Engine.from_settings(settings)
    try:
        report = sync_curated(store, settings, engine.index_writer())
    finally:
        engine.close()
    print(report.summary(), file=out)
    return 0 if report.ok else 1
