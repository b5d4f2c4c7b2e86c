"""Live sources benchmark: Confluence (Cloud), Google Drive and Slack threads against the tests' fake servers.

Full sync of 10,000 Confluence pages, 2,000 Drive files and 2,000 Slack threads (text from the Sourcegraph
handbook), pages/s per kind; then, per kind, 20 edits, 5 deletions and 5 permission changes (Slack: a member
leaves 5 private channels), and the scheduled poll that applies them, its requests by method. Confluence's
poll applies the edits and the deletions (trash); a restriction change touches nothing its search shows, so it
comes pushed (Data Center's webhooks, or on Cloud the Forge relay app in deploy/confluence-forge) and the poll
reads the pages named; without them (`--no-forge-relay` on Cloud, or no `--redis-url`) only the id listing shows
it. The listing runs every `RAG_LIVE_PRUNE_EVERY` syncs either way: the bench runs it after every Confluence poll
and prints its cost. After each kind the bench checks the index: every edit in (a new version), every deletion
gone, every changed document with the readers the source now gives it; it stops if one is missing.

Two totals: the steady state of a poll (the polls' calls plus the listing's divided by `RAG_LIVE_PRUNE_EVERY`,
its seconds likewise), then the last line: every call made to apply all the changes (the listing's too when a
change waited for it) as a share of the full syncs' calls (what the issue asks for). Each sync's requests are
counted by the connectors (`SyncReport.api_calls`).

Pushed changes are delivered the way the services send them, with `--redis-url` (default `RAG_TEST_REDIS_URL`):
the fake Slack's Events API envelopes for every change go to the recorder the Slack adapter runs; the fake Data
Center's webhook bodies, or on Cloud the bodies the relay app's own `relay.js` (run by Node) makes of the events
Forge would hand it, signed with the webhook secret, go to the recorder `POST /webhooks/confluence` runs; every
API request the syncs make is counted as before.

By default the passages get hashed random unit vectors instead of embeddings (the real model on a loaded 2-core
machine would turn this into a multi-hour embedding benchmark; `sync_bench.py` measures that); `--real-embeddings`
uses the model. The output says which.

    .venv/bin/python benchmarks/live_sync_bench.py [--pages 10000] [--files 2000] [--threads 2000]
        [--redis-url URL] [--confluence-flavor cloud|datacenter] [--no-forge-relay]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.confluence_api.events import ConfluenceChangeRecorder, signature  # noqa: E402
from connectors.slack_threads.events import SlackChangeRecorder  # noqa: E402
from connectors.sync import SyncReport, run_sync  # noqa: E402
from rag_core.settings import Settings, SourceConfig  # noqa: E402
from tests.connectors.live.fake_confluence import T0, FakeConfluence, Page  # noqa: E402
from tests.connectors.live.fake_drive import DOC, SHEET, SLIDES, FakeDrive, File, service_account_json  # noqa: E402
from tests.connectors.live.fake_http import FakeApi  # noqa: E402
from tests.connectors.live.fake_slack_api import BOT_USER, Channel, FakeSlackApi  # noqa: E402

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.indexing import IndexedDocument

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


def build_confluence(n: int, texts: list[str], flavor: str) -> FakeConfluence:
    email = "bot@example.com" if flavor == "cloud" else None
    api = FakeConfluence(flavor, token="bench-confluence-token", email=email)
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


def slack_events(redis_url: str) -> SlackChangeRecorder | None:
    """The recorder the Slack adapter runs (bot/slack/app.py), on a clean event log; None without Redis."""
    if not redis_url:
        print("slack events: off (no --redis-url): every poll reads each channel's history")
        return None
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("ragbot:live_events:*"):
        client.delete(key)
    client.close()
    print("slack events: the Events API envelopes of every change are delivered to the adapter's recorder")
    return SlackChangeRecorder(redis_url)


BENCH_WEBHOOK_SECRET = "bench-confluence-webhook-secret"


RELAY_JS = ROOT / "deploy" / "confluence-forge" / "src" / "relay.js"
_RELAY_BODIES = """
const { relayBody } = require(process.argv[1]);
let input = '';
process.stdin.on('data', (d) => (input += d)).on('end', () => {
  process.stdout.write(JSON.stringify(JSON.parse(input).map(relayBody)));
});
"""


def confluence_webhooks(redis_url: str, flavor: str, forge_relay: bool) -> ConfluenceChangeRecorder | None:
    """Data Center's webhooks, or on Cloud the Forge relay app's posts, reach the recorder
    `POST /webhooks/confluence` runs (bot/api/webhooks.py)."""
    why = (
        "no --redis-url"
        if not redis_url
        else "--no-forge-relay"
        if flavor == "cloud" and not forge_relay
        else "Node.js, which runs the Forge relay's code, is not installed"
        if flavor == "cloud" and shutil.which("node") is None
        else ""
    )
    if why:
        print(f"confluence webhooks: off ({why}); restriction changes wait for the id listing")
        return None
    print(
        "confluence webhooks: Data Center's signed bodies of every change reach the webhook route's recorder"
        if flavor == "datacenter"
        else "confluence events: the Forge relay app (deploy/confluence-forge) posts the restriction events Forge "
        "hands it, bodies made by its own relay.js under Node, signed, to the webhook route's recorder"
    )
    return ConfluenceChangeRecorder(redis_url, BENCH_WEBHOOK_SECRET)


def pushed_confluence_bodies(wiki: FakeConfluence) -> list[bytes]:
    """What reaches `POST /webhooks/confluence`: Data Center's webhook bodies, or the Forge relay's."""
    if wiki.flavor == "datacenter":
        return list(wiki.webhooks)
    done = subprocess.run(
        [shutil.which("node") or "node", "-e", _RELAY_BODIES, str(RELAY_JS)],
        input=json.dumps(wiki.forge_events),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [body.encode() for body in json.loads(done.stdout)]


def deliver(api: FakeSlackApi, recorder: SlackChangeRecorder | None, start: int) -> int:
    """Hand the envelopes queued since `start` to the recorder, as the Slack adapter does on receipt."""
    if recorder is not None:
        for envelope in api.events[start:]:
            recorder(envelope)
        if not recorder.flush(60.0):  # its thread writes them; the sync must see them all
            raise RuntimeError("the event hints were not written within 60 s")
    return len(api.events)


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


Expected = tuple[set[str], set[str], dict[str, tuple[str, ...]]]  # edited ids, deleted ids, id -> readers
LEAD = ("user:lead@example.com",)


def change_confluence(api: FakeConfluence) -> Expected:
    ids = sorted(api.pages, key=int)
    third = len(ids) // 3
    for page_id in ids[:EDITS]:
        api.edit(page_id, f"<p>Edited {page_id}: {api.pages[page_id].body}</p>")
    for page_id in ids[third : third + DELETIONS]:
        api.trash(page_id)
    for page_id in ids[2 * third : 2 * third + PERMISSIONS]:
        api.restrict(page_id, users=["lead@example.com"])
    restricted = ids[2 * third : 2 * third + PERMISSIONS]
    return set(ids[:EDITS]), set(ids[third : third + DELETIONS]), dict.fromkeys(restricted, LEAD)


def change_drive(api: FakeDrive) -> Expected:
    ids = sorted(api.files)
    edited = [i for i in ids if api.files[i].mime == DOC][:EDITS]
    for file_id in edited:
        api.touch(file_id, content=api.files[file_id].content.replace(b"<p>", b"<p>Edited. "))
    for file_id in ids[-DELETIONS:]:
        api.remove(file_id)
    shared = ids[len(ids) // 2 : len(ids) // 2 + PERMISSIONS]
    for file_id in shared:
        api.touch(
            file_id, permissions=[{"type": "user", "emailAddress": "lead@example.com", "role": "reader"}]
        )
    return set(edited), set(ids[-DELETIONS:]), dict.fromkeys(shared, LEAD)


def change_slack(api: FakeSlackApi) -> Expected:
    public = [c for c in api.channels.values() if not c.private]
    edited: set[str] = set()
    for k in range(EDITS):
        chan = public[k % len(public)]
        parents = [m for m in chan.messages if m.thread_ts is None and m.subtype is None]
        if k % 2:
            api.edit(chan.id, parents[-1].ts, parents[-1].text + " (edited)")
            edited.add(f"{chan.id}:{parents[-1].ts}")
        else:
            api.post(chan.id, "U3", "One more answer, thanks.", thread_ts=parents[-2].ts)
            edited.add(f"{chan.id}:{parents[-2].ts}")
    deleted: set[str] = set()
    for k in range(DELETIONS):
        chan = public[-1 - k]
        parent = next(m for m in chan.messages if m.thread_ts is None)
        api.delete(chan.id, parent.ts)
        deleted.add(f"{chan.id}:{parent.ts}")
    readers: dict[str, tuple[str, ...]] = {}
    for chan in [c for c in api.channels.values() if c.private][:PERMISSIONS]:
        api.leave(chan.id, "U19")  # someone leaves a private channel: its threads' readers change
        emails = sorted(f"user:{api.users[u]['email']}" for u in chan.members if api.users[u]["email"])
        for m in chan.messages:
            if m.thread_ts is None:
                readers[f"{chan.id}:{m.ts}"] = tuple(emails)
    return edited, deleted, readers


def missing(
    before: dict[str, IndexedDocument], after: dict[str, IndexedDocument], expected: Expected
) -> list[str]:
    """What the index does not show of the changes: edits not in, deletions still there, readers not as the source's."""
    edited, deleted, readers = expected
    gaps = [
        f"edit of {i} not in"
        for i in sorted(edited)
        if i not in after or after[i].version == before[i].version
    ]
    gaps += [f"{i} not deleted" for i in sorted(deleted) if i in after]
    gaps += [
        f"readers of {i} not changed"
        for i, r in sorted(readers.items())
        if i in after and after[i].readers != r
    ]
    return gaps


def by_method(api: FakeApi, start: int) -> str:
    """The requests made since `start`, by method (the last path segment), most first."""
    counts = Counter(r.path.rstrip("/").rsplit("/", 1)[-1] for r in api.requests[start:])
    return ", ".join(f"{name} {n}" for name, n in counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=2_000)
    parser.add_argument("--real-embeddings", action="store_true")
    parser.add_argument(
        "--confluence-flavor",
        choices=["cloud", "datacenter"],
        default="cloud",
        help="datacenter: its webhooks (signed, as Confluence sends them) reach the recorder the API's route runs",
    )
    parser.add_argument(
        "--no-forge-relay",
        action="store_true",
        help="Cloud without the Forge relay app: restriction changes wait for the id listing",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("RAG_TEST_REDIS_URL", ""),
        help="a Redis database for Slack's event hints (its ragbot:live_events:* keys are cleared); "
        "none: Slack is polled channel by channel",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from rag_core.engine import Engine

    texts = paragraphs(max(args.pages, args.files, args.threads) + 10)
    wiki, drive, slack = (
        build_confluence(args.pages, texts, args.confluence_flavor),
        build_drive(args.files, texts),
        build_slack(args.threads, texts),
    )
    for api in (wiki, drive, slack):
        api.start()
    recorder = slack_events(args.redis_url)
    hooks = confluence_webhooks(args.redis_url, args.confluence_flavor, not args.no_forge_relay)
    os.environ["BENCH_CONFLUENCE_TOKEN"] = wiki.token
    os.environ["BENCH_DRIVE_KEY"] = service_account_json(f"{drive.base}/token")
    os.environ["BENCH_SLACK_TOKEN"] = slack.token
    sources = [
        SourceConfig(
            name="confluence",
            kind="confluence_api",
            url=wiki.url(),
            flavor=args.confluence_flavor,
            email="bot@example.com" if args.confluence_flavor == "cloud" else None,
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
            redis_url=args.redis_url or None,
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
        delivered = deliver(
            slack, recorder, 0
        )  # the workspace's messages reached the bot as they were posted
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
        prune_every = settings.live_prune_every
        prune_now = settings.model_copy(update={"live_prune_every": 1})
        apis: dict[str, FakeApi] = {"confluence": wiki, "drive": drive, "slack": slack}
        all_calls = all_s = steady_calls = steady_s = 0.0
        for config in sources:
            before = writer.indexed_documents(config.name)
            expected = changers[config.name]()
            if config.name == "slack":
                delivered = deliver(slack, recorder, delivered)
            if config.name == "confluence" and hooks is not None:
                for body in pushed_confluence_bodies(wiki):  # signed with the webhook's secret
                    assert hooks.receive(body, signature(body, BENCH_WEBHOOK_SECRET)) == 204
                if not hooks.flush(60.0):  # its thread writes them; the sync must see them all
                    raise RuntimeError("the webhook hints were not written within 60 s")
            mark = len(apis[config.name].requests)
            (poll,) = run_sync(settings, writer, source=config.name)
            assert poll.ok, poll.error
            calls, seconds = float(poll.api_calls or 0), poll.duration_s
            line = (
                f"incremental {config.name}: poll {poll.api_calls} calls, {poll.duration_s:.1f} s "
                f"({poll.updated} updated, {poll.deleted} deleted, {poll.permissions_changed} readers rewritten; "
                f"{by_method(apis[config.name], mark)})"
            )
            gaps = missing(before, writer.indexed_documents(config.name), expected)
            listing_calls = listing_s = 0.0  # what applying the changes needed beyond the poll
            if config.name == "confluence":  # the id listing runs every `prune_every` syncs either way
                if gaps:  # restrictions with no webhook or relay: only the listing shows them
                    print(f"{line}; not applied by the poll: {len(gaps)} ({gaps[0]}, …)")
                (pruned,) = run_sync(prune_now, writer, source=config.name)
                assert pruned.ok, pruned.error
                listed = (
                    f"id listing (every {prune_every} syncs) {pruned.api_calls} calls, {pruned.duration_s:.1f} s "
                    f"({pruned.updated} updated, {pruned.deleted} deleted, "
                    f"{pruned.permissions_changed} readers rewritten)"
                )
                steady_calls += float(pruned.api_calls or 0) / prune_every
                steady_s += pruned.duration_s / prune_every
                if gaps:
                    listing_calls, listing_s = float(pruned.api_calls or 0), pruned.duration_s
                    line = f"incremental {config.name}: + {listed}"
                    gaps = missing(before, writer.indexed_documents(config.name), expected)
                else:
                    print(f"{line}; the {listed} found nothing left to apply")
            assert not gaps, f"{config.name}: changes not applied: {gaps[:5]}"
            total = calls + listing_calls
            share = 100 * total / (full[config.name].api_calls or 1)
            print(
                f"{line} = {total:.0f} calls ({share:.2f}% of full), {seconds + listing_s:.1f} s; "
                f"checked: {len(expected[0])} edits, {len(expected[1])} deletions, "
                f"{len(expected[2])} documents' readers in the index"
            )
            all_calls += total
            all_s += seconds + listing_s
            steady_calls += calls
            steady_s += seconds
        engine.close()
    for api in (wiki, drive, slack):
        api.stop()
    if recorder is not None:
        recorder.close()
    if hooks is not None:
        hooks.close()
    full_calls = sum(r.api_calls or 0 for r in full.values())
    slowest = min(r.added / r.duration_s for r in full.values())
    print(
        f"steady state of a poll (the id listing counted 1/{prune_every}, as it runs every {prune_every} "
        f"syncs): {steady_calls:.0f} calls = {100 * steady_calls / full_calls:.2f}% of full, {steady_s:.1f} s"
    )
    print("every change applied (Confluence's id listing included when a change waited for it):")
    print(
        f"live_sync_bench: kinds {','.join(k for k in counts)}; full {slowest:.1f} pages/s; incremental "
        f"{all_calls:.0f} calls = {100 * all_calls / full_calls:.2f}% of full, {all_s:.1f} s"
    )


if __name__ == "__main__":
    main()
