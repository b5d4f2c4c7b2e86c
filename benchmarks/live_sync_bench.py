"""Live sources benchmark: Confluence (Cloud), Google Drive and Slack threads against the tests' fake servers.

Full sync of 10,000 Confluence pages, 2,000 Drive files and 2,000 Slack threads (text from the Sourcegraph
handbook), pages/s per kind; then, per kind, 20 edits, 5 deletions and 5 permission changes, and the incremental
sync that applies them: the scheduled poll, plus, for Confluence, the id listing (its API reports neither deletions
nor restriction changes incrementally). Its API calls as a share of the
full sync's, and its seconds. Each sync's requests are counted by the connectors (`SyncReport.api_calls`).

By default the passages get hashed random unit vectors instead of embeddings (the real model on a loaded 2-core
machine would turn this into a multi-hour embedding benchmark; `sync_bench.py` measures that); `--real-embeddings`
uses the model. The output says which.

    .venv/bin/python benchmarks/live_sync_bench.py [--pages 10000] [--files 2000] [--threads 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import logging
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.sync import SyncReport, run_sync  # noqa: E402
from rag_core.settings import Settings, SourceConfig  # noqa: E402
from tests.connectors.live.fake_confluence import T0, FakeConfluence, Page  # noqa: E402
from tests.connectors.live.fake_drive import DOC, SHEET, SLIDES, FakeDrive, File, service_account_json  # noqa: E402
from tests.connectors.live.fake_slack_api import BOT_USER, Channel, FakeSlackApi  # noqa: E402

if TYPE_CHECKING:
    from rag_core.engine import Engine

CORPUS = ROOT.parent / "shared" / "corpora" / "sourcegraph-handbook" / "content"
EDITS, DELETIONS, PERMISSIONS = 20, 5, 5


def paragraphs(limit: int) -> list[str]:
    """Handbook paragraphs of 200-900 characters, cycled to `limit` (synthetic ones when the corpus is absent)."""
    found: list[str] = []
    for path in sorted(CORPUS.rglob("*.md")) if CORPUS.exists() else []:
        for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            block = block.strip()
            if 200 <= len(block) <= 900 and not block.startswith(("---", "|", "```")):
                found.append(block)
    if not found:
        found = [
            f"Paragraph {i} about deploys, on-call, onboarding and the handbook." * 4 for i in range(500)
        ]
    return list(itertools.islice(itertools.cycle(found), limit))


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_confluence(n: int, texts: list[str]) -> FakeConfluence:
    api = FakeConfluence("cloud", token="bench-confluence-token", email="bot@example.com")
    api.add_space("HB", "Handbook", read_groups=["staff"])
    for i in range(n):
        when = T0 - timedelta(minutes=10 * (n - i))  # a page every 10 minutes, the newest at T0
        api.add_page(
            Page(
                str(100000 + i),
                "HB",
                f"Handbook page {i}",
                f"<h1>Page {i}</h1><p>{esc(texts[i])}</p>",
                when=when,
            )
        )
    return api


def xlsx(text: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for line in text.split(". ")[:5]:
        book.active.append([line[:60], len(line)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def build_drive(n: int, texts: list[str]) -> FakeDrive:
    api = FakeDrive()
    for i in range(n):
        text = texts[i]
        kind = i % 10
        if kind < 4:
            api.put(
                File(
                    f"f{i:05d}",
                    f"Doc {i}",
                    DOC,
                    f"<html><body><h1>Doc {i}</h1><p>{esc(text)}</p></body></html>".encode(),
                )
            )
        elif kind == 4:
            api.put(File(f"f{i:05d}", f"Sheet {i}", SHEET, xlsx(text)))
        elif kind == 5:
            api.put(File(f"f{i:05d}", f"Slides {i}", SLIDES, text.encode()))
        else:
            api.put(File(f"f{i:05d}", f"note-{i}.md", "text/markdown", f"# Note {i}\n\n{text}".encode()))
    return api


def build_slack(n: int, texts: list[str]) -> FakeSlackApi:
    api = FakeSlackApi(token="xoxb-bench-slack-token")
    for u in range(20):
        api.add_user(f"U{u}", f"Person {u}", f"person{u}@example.com")
    channels = 40
    for c in range(channels):
        private = c < 5
        api.channels[f"C{c:03d}"] = Channel(
            f"C{c:03d}",
            f"chan-{c}",
            private=private,
            members=[f"U{c % 20}", f"U{(c + 1) % 20}", "U19", BOT_USER],
        )
    for i in range(n):
        channel = f"C{i % channels:03d}"
        parent = api.post(channel, f"U{i % 20}", texts[i][:300] + "?")
        for r in range(3):
            api.post(
                channel, f"U{(i + r + 1) % 20}", texts[(i + r + 7) % len(texts)][:200], thread_ts=parent.ts
            )
    return api


def stub_embeddings(engine: Engine) -> None:
    """Hashed random unit vectors: the same text always gets the same vector, at no model cost."""
    dim = engine.embedder.dim

    def encode(texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
            out[row] = vec / np.linalg.norm(vec)
        engine.embedder.embedded_count += len(texts)
        return out

    engine.embedder.encode_passages = encode  # type: ignore[method-assign]


def change_confluence(api: FakeConfluence) -> None:
    ids = sorted(api.pages, key=int)
    third = len(ids) // 3
    for page_id in ids[:EDITS]:
        api.edit(page_id, f"<p>Edited {page_id}: {api.pages[page_id].body}</p>")
    for page_id in ids[third : third + DELETIONS]:
        api.pages[page_id].status = "trashed"
    for page_id in ids[2 * third : 2 * third + PERMISSIONS]:
        api.restrict(page_id, users=["lead@example.com"])


def change_drive(api: FakeDrive) -> None:
    ids = sorted(api.files)
    for file_id in [i for i in ids if api.files[i].mime == DOC][:EDITS]:
        api.touch(file_id, content=api.files[file_id].content.replace(b"<p>", b"<p>Edited. "))
    for file_id in ids[-DELETIONS:]:
        api.remove(file_id)
    for file_id in ids[len(ids) // 2 : len(ids) // 2 + PERMISSIONS]:
        api.touch(
            file_id, permissions=[{"type": "user", "emailAddress": "lead@example.com", "role": "reader"}]
        )


def change_slack(api: FakeSlackApi) -> None:
    public = [c for c in api.channels.values() if not c.private]
    for k in range(EDITS):
        chan = public[k % len(public)]
        parents = [m for m in chan.messages if m.thread_ts is None and m.subtype is None]
        if k % 2:
            api.edit(chan.id, parents[-1].ts, parents[-1].text + " (edited)")
        else:
            api.post(chan.id, "U3", "One more answer, thanks.", thread_ts=parents[-2].ts)
    for k in range(DELETIONS):
        chan = public[-1 - k]
        api.delete(chan.id, next(m for m in chan.messages if m.thread_ts is None).ts)
    for chan in [c for c in api.channels.values() if c.private][:PERMISSIONS]:
        chan.members.remove("U19")  # someone leaves a private channel: its threads' readers change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=2_000)
    parser.add_argument("--real-embeddings", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from rag_core.engine import Engine

    texts = paragraphs(max(args.pages, args.files, args.threads) + 10)
    wiki, drive, slack = (
        build_confluence(args.pages, texts),
        build_drive(args.files, texts),
        build_slack(args.threads, texts),
    )
    for api in (wiki, drive, slack):
        api.start()
    os.environ["BENCH_CONFLUENCE_TOKEN"] = wiki.token
    os.environ["BENCH_DRIVE_KEY"] = service_account_json(f"{drive.base}/token")
    os.environ["BENCH_SLACK_TOKEN"] = slack.token
    sources = [
        SourceConfig(
            name="confluence",
            kind="confluence_api",
            url=wiki.url(),
            email="bot@example.com",
            token_env="BENCH_CONFLUENCE_TOKEN",
            spaces=["HB"],
        ),
        SourceConfig(name="drive", kind="drive_api", url=drive.base, token_env="BENCH_DRIVE_KEY"),
        SourceConfig(
            name="slack",
            kind="slack_threads",
            url=slack.base,
            token_env="BENCH_SLACK_TOKEN",
            channels=sorted(slack.channels),
        ),
    ]
    counts = {"confluence": args.pages, "drive": args.files, "slack": args.threads}
    changers = {
        "confluence": lambda: change_confluence(wiki),
        "drive": lambda: change_drive(drive),
        "slack": lambda: change_slack(slack),
    }
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            sources=sources,
            rerank_model="",
            redis_url=None,
            embedding_backend="fp32",
            log_level="WARNING",
        )
        engine = Engine.from_settings(settings)
        stubbed = not args.real_embeddings
        if stubbed:
            stub_embeddings(engine)
        writer = engine.index_writer()
        print(
            f"embeddings: {'hashed random vectors (stand-in, no model time)' if stubbed else 'the real model'}; "
            "machine: shared 2-core, loaded (figures are relative)"
        )
        full: dict[str, SyncReport] = {}
        for config in sources:
            (report,) = run_sync(settings, writer, source=config.name)
            assert report.ok, report.error
            full[config.name] = report
            rate = report.added / report.duration_s
            print(
                f"full {config.name}: {report.added:,} documents ({counts[config.name]:,} items, "
                f"{len(report.skipped)} skipped) in {report.duration_s:.1f} s = {rate:.1f} pages/s, "
                f"{report.api_calls:,} API calls"
            )
        incremental_calls = incremental_s = 0.0
        prune_now = settings.model_copy(update={"live_prune_every": 1})
        for config in sources:
            changers[config.name]()
            (poll,) = run_sync(settings, writer, source=config.name)
            assert poll.ok, poll.error
            calls, seconds = poll.api_calls or 0, poll.duration_s
            applied = f"{poll.updated} updated, {poll.deleted} deleted"
            line = (
                f"incremental {config.name}: poll {poll.api_calls} calls, {poll.duration_s:.1f} s ({applied})"
            )
            if (
                config.name == "confluence"
            ):  # CQL shows neither deletions nor restriction changes: the listing
                (pruned,) = run_sync(prune_now, writer, source=config.name)
                assert pruned.ok, pruned.error
                calls += pruned.api_calls or 0
                seconds += pruned.duration_s
                line += (
                    f" + id listing {pruned.api_calls} calls, {pruned.duration_s:.1f} s "
                    f"({pruned.updated} updated, {pruned.deleted} deleted)"
                )
            share = 100 * calls / (full[config.name].api_calls or 1)
            print(f"{line} = {calls:.0f} calls ({share:.2f}% of full), {seconds:.1f} s")
            incremental_calls += calls
            incremental_s += seconds
        engine.close()
    for api in (wiki, drive, slack):
        api.stop()
    full_calls = sum(r.api_calls or 0 for r in full.values())
    slowest = min(r.added / r.duration_s for r in full.values())
    print(
        f"live_sync_bench: kinds {','.join(k for k in counts)}; full {slowest:.1f} pages/s; incremental "
        f"{incremental_calls:.0f} calls = {100 * incremental_calls / full_calls:.2f}% of full, {incremental_s:.1f} s"
    )


if __name__ == "__main__":
    main()
