"""The `ragbot` command: ask, sources, sync, schedule, eval, report, demo, the bots (`run` for all) and the HTTP API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rag_core.errors import ConfigError, ExportError, RagbotError, StoreUnavailable, UserError

# Exit code per error meaning; any other RagbotError exits 1 (and a bug keeps its traceback).
EXIT_CODES: dict[type[RagbotError], int] = {UserError: 2, ConfigError: 2, StoreUnavailable: 3, ExportError: 4}


def exit_code(exc: RagbotError) -> int:
    return next((code for cls, code in EXIT_CODES.items() if isinstance(exc, cls)), 1)


# Each command imports what it needs when it runs, so `ragbot --help` and light commands stay fast.


def _engine_command(args: argparse.Namespace) -> int:
    from bot import cli_engine

    return int(getattr(cli_engine, f"{args.command}_command")(args))


def _eval(args: argparse.Namespace) -> int:
    if args.beir:
        return _engine_command(args)
    from bot import cli_qa

    return cli_qa.qa_command(args) if args.qa else cli_qa.from_feedback_command(args)


def _calibrate(args: argparse.Namespace) -> int:
    from bot import cli_qa

    return cli_qa.calibrate_command(args)


def _sync(args: argparse.Namespace) -> int:
    from connectors.cli import sync_command

    return sync_command(args)


def _reindex(args: argparse.Namespace) -> int:
    from connectors.reindex import reindex_command

    return reindex_command(args)


def _schedule(args: argparse.Namespace) -> int:
    from connectors.schedule import main as schedule_main

    return schedule_main()


def _report(args: argparse.Namespace) -> int:
    if args.serve:
        from bot.api.server import report_serve

        return report_serve(host=args.host, port=args.port)
    from bot.cli_report import report_command

    return report_command(args)


def _api(args: argparse.Namespace) -> int:
    from bot.api.server import main as api_main

    return api_main(host=args.host, port=args.port)


def _slack(args: argparse.Namespace) -> int:
    from bot.slack.app import main as slack_main

    return slack_main(http=args.http)


def _run(args: argparse.Namespace) -> int:
    from bot.runtime import run
    from bot.services import configured_services
    from bot.settings import get_bot_settings

    settings = get_bot_settings()
    # every adapter whose tokens are set, the health server and the schedule; a missing token fails at once
    return run(settings, configured_services(settings), schedule=not args.no_schedule)


def _discord(args: argparse.Namespace) -> int:
    from bot.discord.app import main as discord_main

    return discord_main()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragbot", description="Answers a team's questions from its own documents."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-json",
        action="store_true",
        help="log JSON lines at RAG_LOG_LEVEL (terminal commands otherwise show readable warnings and errors)",
    )

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    ask = add("ask", help="answer a question, streaming it to the terminal")
    ask.add_argument("question")
    ask.add_argument("--source", action="append", dest="sources", help="search only this source (repeatable)")
    ask.set_defaults(func=_engine_command)

    sources = add("sources", help="list the sources for a question, without generating")
    sources.add_argument("question")
    sources.add_argument("--source", action="append", dest="sources")
    sources.set_defaults(func=_engine_command)

    sync = add("sync", help="sync configured sources into the index now")
    sync.add_argument("source", nargs="?", help="one source name (default: all)")
    sync.add_argument("--full", action="store_true", help="re-read and re-embed every document")
    sync.add_argument(
        "--verbose", action="store_true", help="list every skipped file (default: counts by reason)"
    )
    sync.set_defaults(func=_sync)

    reindex = add(
        "reindex", help="re-embed every source into a new index beside the live one, then switch to it"
    )
    reindex.set_defaults(func=_reindex)

    schedule = add("schedule", help="run the scheduler process: each source on its own schedule")
    schedule.set_defaults(func=_schedule)

    ev = add("eval", help="retrieval quality on a BEIR dataset, or answer quality on a QA file (--qa)")
    what = ev.add_mutually_exclusive_group(required=True)
    what.add_argument("--beir", help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/)")
    what.add_argument(
        "--qa", help="QA JSONL file: asks the configured index each question and scores answers"
    )
    what.add_argument(
        "--from-feedback", metavar="OUT", help="write a QA JSONL file from the query log's 👍 answers"
    )
    ev.add_argument("--split", default=None, help="BEIR split (default test) or the QA file's split")
    ev.add_argument("--limit", type=int, default=0, help="evaluate only the first N queries")
    ev.add_argument(
        "--backend",
        choices=("auto", "fp32", "bf16", "onnx-int8"),
        help="embedding backend (default: RAG_EMBEDDING_BACKEND); each backend gets its own index",
    )
    ev.add_argument(
        "--corpus-sample",
        type=int,
        default=0,
        help="index only the judged documents of the evaluated queries plus N others (quick comparisons)",
    )
    ev.add_argument("--days", type=int, default=90, help="--from-feedback: answers of the last N days")
    ev.set_defaults(func=_eval)

    cal = add(
        "calibrate",
        help="fit the answerability threshold on your own questions and write RAG_ANSWERABILITY_MIN to .env",
    )
    cal.add_argument("--qa", required=True, help="QA JSONL file (e.g. from `ragbot eval --from-feedback`)")
    cal.add_argument("--split", default=None, help="only the file's cases with this split")
    cal.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    cal.add_argument(
        "--max-wrong", type=float, default=0.05, help="wrongly abstained allowed on answerable questions"
    )
    cal.add_argument("--env-file", default=".env", help="env file to write the setting to (default .env)")
    cal.add_argument("--print-only", action="store_true", help="print the RAG_ line instead of writing it")
    cal.set_defaults(func=_calibrate)

    rep = add("report", help="admin report of questions, feedback and coverage gaps")
    rep.add_argument("--days", type=int, default=30)
    rep.add_argument("--out", default=None, help="HTML file to write (default: data/report.html)")
    rep.add_argument(
        "--serve",
        action="store_true",
        help="serve the live page at /admin/report and print a one-time login link",
    )
    rep.add_argument("--host", default=None, help="with --serve: address to listen on (default RAG_API_HOST)")
    rep.add_argument("--port", type=int, default=None, help="with --serve: port (default RAG_API_PORT)")
    rep.set_defaults(func=_report)

    demo = add("demo", help="index the bundled sample knowledge base and answer three sample questions")
    demo.set_defaults(func=_engine_command)

    run = add(
        "run",
        help="run the bot: every adapter whose tokens are set, the sync schedule and /healthz in one process",
    )
    run.add_argument(
        "--no-schedule",
        action="store_true",
        help="leave scheduled syncs to a separate `ragbot schedule` (needs a Qdrant server)",
    )
    run.set_defaults(func=_run)

    slack = add("slack", help="run the Slack bot")
    slack.add_argument("--http", action="store_true", help="HTTP (Events API) mode instead of Socket Mode")
    slack.set_defaults(func=_slack)

    api = add("api", help="run the HTTP API (needs RAG_API_TOKENS; docs/api.md)")
    api.add_argument("--host", default=None, help="address to listen on (default RAG_API_HOST)")
    api.add_argument("--port", type=int, default=None, help="port (default RAG_API_PORT)")
    api.set_defaults(func=_api)

    discord = add("discord", help="run the Discord bot")
    discord.set_defaults(func=_discord)

    from bot.cli_knowledge import add_parser as add_knowledge

    add_knowledge(sub, [common])
    return parser


# Commands that run as services (their logs go to a collector: JSON lines per RAG_LOG_JSON); every other command
# is run by a person at a terminal.
SERVICE_COMMANDS = frozenset({"run", "slack", "api", "discord", "schedule"})


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    from rag_core.logs import set_log_mode

    set_log_mode("json" if args.log_json else None if args.command in SERVICE_COMMANDS else "terminal")
    try:
        from connectors.registry import check_kinds
        from rag_core.settings import get_settings

        check_kinds(get_settings().sources)  # bad settings fail here, one line each, before any model loads
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RagbotError as exc:  # a ConfigError may hold one line per bad setting
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"ragbot: error: {line}", file=sys.stderr)
        return exit_code(exc)
    finally:
        set_log_mode(None)  # main() may run again in the same process (tests)


if __name__ == "__main__":
    sys.exit(main())
