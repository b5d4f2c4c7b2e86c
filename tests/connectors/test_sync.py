"""Incremental sync against a real engine: real embedding model, real embedded Qdrant store, real readers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rag_core.indexing
from connectors.sync import content_version, render_report, run_sync
from rag_core.errors import ConfigError, UserError
from rag_core.kv import make_kv
from rag_core.settings import SourceConfig
from rag_core.store import Where
from tests.connectors import exports

ROOT = exports.ROOT
RUNBOOK = "On-call-runbook_65538.html"


def sources(tmp_path: Path) -> list[SourceConfig]:
    space = exports.copy_sample("confluence-eng", tmp_path)
    drive = exports.copy_sample("drive-people", tmp_path)
    return [
        SourceConfig(name="eng-wiki", kind="confluence", path=space),
        SourceConfig(name="people-drive", kind="drive", path=drive),
    ]


def counts(report) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.deleted, report.unchanged


def texts_for(engine, question: str, doc_id: str) -> list[str]:
    return [c.snippet for c in engine.sources(question, k=10) if c.doc_id == doc_id]


def edit_runbook(space: Path) -> None:
    page = space / RUNBOOK
    page.write_text(page.read_text().replace("We page through PagerDuty.", "We page through Opsgenie now."))


def test_first_sync_adds_everything_and_a_resync_embeds_nothing(make_engine, tmp_path: Path) -> None:
    engine, settings = make_engine(sources(tmp_path))
    writer = engine.index_writer()
    start = writer.embedded_count

    eng, people = run_sync(settings, writer)

    assert (counts(eng), eng.skipped, eng.error) == ((7, 0, 0, 0), [], None)
    assert (counts(people), people.skipped, people.error) == ((3, 0, 0, 0), [], None)
    assert writer.embedded_count - start == eng.chunks_written + people.chunks_written > 10
    assert 0 < eng.index_version < people.index_version == engine.index_version
    assert engine.sources("What is the limit for a team dinner on expenses?")[0].title == "Expenses policy"

    mark = writer.embedded_count
    eng2, people2 = run_sync(settings, writer)
    assert writer.embedded_count == mark  # zero embeddings when nothing changed
    assert (counts(eng2), counts(people2)) == ((0, 0, 0, 7), (0, 0, 0, 3))
    assert eng2.index_version == people2.index_version == people.index_version  # nothing written: cache kept

    full = run_sync(settings, writer, source="people-drive", full=True)[0]
    assert counts(full) == (0, 3, 0, 0)
    assert writer.embedded_count - mark == full.chunks_written == people.chunks_written


def test_edit_one_page_and_delete_one_touches_only_those(make_engine, tmp_path: Path) -> None:
    configs = sources(tmp_path)
    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    run_sync(settings, writer)
    space = configs[0].path
    assert texts_for(engine, "operations team weekly review meeting", "65541")

    edit_runbook(space)
    (space / "Operations_65541.html").unlink()
    mark = writer.embedded_count
    (report,) = run_sync(settings, writer, source="eng-wiki")

    assert counts(report) == (0, 1, 1, 5)
    runbook_chunks = len(engine.chunker.split(_read_doc(settings, configs[0], "65538")))
    assert writer.embedded_count - mark == report.chunks_written == runbook_chunks
    assert "65541" not in writer.document_versions("eng-wiki")
    assert not texts_for(
        engine, "operations team weekly review meeting", "65541"
    )  # never served once deleted
    assert any("Opsgenie" in t for t in texts_for(engine, "How are we paged on call?", "65538"))
    assert not any("through PagerDuty." in t for t in texts_for(engine, "How are we paged on call?", "65538"))


def _read_doc(settings, config: SourceConfig, doc_id: str):
    from connectors.registry import make_reader

    return next(d for d in make_reader(config, settings).read() if getattr(d, "id", None) == doc_id)


def test_queries_during_a_sync_see_the_old_version_and_an_interrupted_sync_is_completed_next_time(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = sources(tmp_path)
    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    run_sync(settings, writer, source="eng-wiki")
    monkeypatch.setattr(rag_core.indexing, "_FLUSH_CHUNKS", 1)  # write every chunk at once: the worst case
    before_versions = writer.document_versions("eng-wiki")
    before_version = engine.index_version
    edit_runbook(configs[0].path)
    (configs[0].path / "65542.html").unlink()
    seen_mid_sync: list[list[str]] = []

    def crash_at_the_end(source: str, done: int, total: int | None) -> None:
        if done == total:  # every document read and written, nothing committed yet
            seen_mid_sync.append(texts_for(engine, "How are we paged on call?", "65538"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sync(settings, writer, source="eng-wiki", on_document=crash_at_the_end)

    (mid,) = seen_mid_sync
    assert mid and any("through PagerDuty." in t for t in mid) and not any("Opsgenie" in t for t in mid)
    assert writer.document_versions("eng-wiki") == before_versions  # the glossary is not deleted either
    assert engine.index_version == before_version
    assert any("through PagerDuty." in t for t in texts_for(engine, "How are we paged on call?", "65538"))

    (report,) = run_sync(settings, writer, source="eng-wiki")
    assert counts(report) == (0, 1, 1, 5)
    assert any("Opsgenie" in t for t in texts_for(engine, "How are we paged on call?", "65538"))
    assert (
        engine.store.count(Where(gen_gt=engine.index_version)) == 0
    )  # the crashed sync's leftovers are gone
    visible = {c.doc_id for c in engine.sources("glossary release train secondary ack", k=20)}
    assert "65542" not in visible


_KILLED_CHILD = """
import sys, time
from pathlib import Path
import rag_core.indexing
from connectors.sync import run_sync
from rag_core.engine import Engine
from rag_core.settings import SourceConfig
from rag_core.store import Where
from tests.conftest import make_settings

rag_core.indexing._FLUSH_CHUNKS = 1
data, space, flag = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = make_settings(data, sources=[SourceConfig(name="eng-wiki", kind="confluence", path=space)])
engine = Engine.from_settings(settings)

def hang(source, done, total):
    if done == total:
        flag.write_text("written, not committed")
        time.sleep(600)

run_sync(settings, engine.index_writer(), on_document=hang)
"""


def test_a_sync_killed_hard_leaves_the_previous_state_and_the_next_sync_completes_it(
    make_engine, tmp_path: Path
) -> None:
    configs = sources(tmp_path)[:1]
    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    run_sync(settings, writer)
    before = writer.document_versions("eng-wiki")
    engine.close()  # the embedded store is opened by one process at a time
    edit_runbook(configs[0].path)

    flag = tmp_path / "flag"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(settings.data_dir), str(configs[0].path), str(flag)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not flag.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child sync never reached its last document"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)

    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    assert writer.document_versions("eng-wiki") == before
    assert any("through PagerDuty." in t for t in texts_for(engine, "How are we paged on call?", "65538"))
    (report,) = run_sync(settings, writer)
    assert counts(report) == (0, 1, 0, 6)
    assert any("Opsgenie" in t for t in texts_for(engine, "How are we paged on call?", "65538"))


def test_a_missing_or_emptied_export_deletes_nothing(make_engine, tmp_path: Path) -> None:
    configs = sources(tmp_path)
    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    run_sync(settings, writer)
    before = writer.document_versions("eng-wiki")
    version = engine.index_version

    moved = configs[0].path.rename(tmp_path / "elsewhere")
    (missing,) = run_sync(settings, writer, source="eng-wiki")
    assert missing.error == f"export {configs[0].path} does not exist"
    assert missing.index_version is None and missing.deleted == 0

    configs[0].path.mkdir()
    shutil.copy(moved / "index.html", configs[0].path / "index.html")  # a space export with no pages left
    (empty,) = run_sync(settings, writer, source="eng-wiki")
    assert empty.error == f"export {configs[0].path} has no readable documents; kept the 7 indexed documents"
    assert writer.document_versions("eng-wiki") == before
    assert engine.index_version == version
    assert "failed: export" in render_report([missing, empty])


def test_an_unreadable_file_keeps_its_indexed_version(make_engine, tmp_path: Path) -> None:
    configs = sources(tmp_path)
    engine, settings = make_engine(configs)
    writer = engine.index_writer()
    run_sync(settings, writer)
    drive = configs[1].path / "Takeout" / "Drive"
    (drive / "IT Help" / "VPN how-to.md").write_bytes(b"\x00\x00 truncated by a bad copy")
    (drive / "IT Help" / "Router.pdf").write_bytes(exports.encrypted_pdf(["admin password"]))

    (report,) = run_sync(settings, writer, source="people-drive")

    assert counts(report) == (0, 0, 0, 2)
    assert report.skipped == [
        ("Takeout/Drive/IT Help/Router.pdf", "encrypted PDF (needs a password)"),
        ("Takeout/Drive/IT Help/VPN how-to.md", "binary data, not text"),
    ]
    assert "IT Help/VPN how-to.md" in writer.document_versions("people-drive")
    assert texts_for(engine, "How do I set up the VPN with WireGuard?", "IT Help/VPN how-to.md")


def test_reports_are_written_as_json(make_engine, tmp_path: Path) -> None:
    configs = sources(tmp_path)
    engine, settings = make_engine(configs)
    (configs[1].path / "Takeout" / "Drive" / "clip.mp4").write_bytes(b"\x00")
    run_sync(settings, engine.index_writer())
    (path,) = (settings.data_dir / "sync-reports" / "people-drive").glob("*.json")
    data = json.loads(path.read_text())
    assert data["source"] == "people-drive" and data["added"] == 3 and data["error"] is None
    assert data["skipped"] == [{"path": "Takeout/Drive/clip.mp4", "reason": "unsupported file type .mp4"}]
    assert data["index_version"] == 2 and data["duration_s"] > 0


def test_unknown_source_names_the_known_ones(make_engine, tmp_path: Path) -> None:
    engine, settings = make_engine(sources(tmp_path))
    with pytest.raises(UserError, match="unknown source 'wiki'; known sources: eng-wiki, people-drive"):
        run_sync(settings, engine.index_writer(), source="wiki")


def test_an_unknown_kind_fails_before_anything_is_read(make_engine, tmp_path: Path) -> None:
    """`kind` is a plain string in the settings; the connectors check it against their registry."""
    engine, settings = make_engine(
        [*sources(tmp_path), SourceConfig(name="tickets", kind="jira", path=tmp_path)]
    )
    with pytest.raises(
        ConfigError,
        match="source 'tickets' has unknown kind 'jira' \\(expected confluence, drive, curated, confluence_api, drive_api or slack_threads\\)",
    ):
        run_sync(settings, engine.index_writer(), source="eng-wiki")
    assert engine.index_writer().document_versions("eng-wiki") == {}


def test_two_processes_never_sync_the_same_source_at_once(
    make_engine, tmp_path: Path, clean_redis: str
) -> None:
    engine, settings = make_engine(sources(tmp_path), redis_url=clean_redis)
    other_replica = make_kv(clean_redis)
    with other_replica.lock("sync:eng-wiki", ttl_s=60) as held:
        assert held
        eng, people = run_sync(settings, engine.index_writer())
    assert eng.error == "another sync of this source is running" and eng.added == 0
    assert people.error is None and people.added == 3
    assert engine.index_writer().document_versions("eng-wiki") == {}
    assert run_sync(settings, engine.index_writer(), source="eng-wiki")[0].added == 7  # the lock was released


def test_progress_lines_and_document_ticks(make_engine, tmp_path: Path) -> None:
    engine, settings = make_engine(sources(tmp_path))
    lines: list[str] = []
    ticks: list[tuple[str, int, int | None]] = []
    run_sync(
        settings,
        engine.index_writer(),
        source="people-drive",
        progress=lines.append,
        on_document=lambda *a: ticks.append(a),
    )
    assert lines[0] == "people-drive: syncing…"
    assert lines[-1].startswith("people-drive: 3 added, 0 updated, 0 deleted, 0 unchanged, 0 skipped in ")
    assert ticks == [("people-drive", 1, 3), ("people-drive", 2, 3), ("people-drive", 3, 3)]


def test_version_covers_what_is_indexed_and_the_chunking_settings(settings) -> None:
    from rag_core.types import Document

    doc = Document(id="1", source="s", title="T", text="body", url="u", breadcrumb=["a"])
    same = Document(id="1", source="s", title="T", text="body", url="u", breadcrumb=["a"], size=99)
    assert content_version(doc, settings) == content_version(same, settings)
    for changed in (
        Document(id="1", source="s", title="T2", text="body", url="u", breadcrumb=["a"]),
        Document(id="1", source="s", title="T", text="body!", url="u", breadcrumb=["a"]),
        Document(id="1", source="s", title="T", text="body", url="u2", breadcrumb=["a"]),
        Document(id="1", source="s", title="T", text="body", url="u", breadcrumb=["b"]),
    ):
        assert content_version(changed, settings) != content_version(doc, settings)
    assert content_version(doc, settings.model_copy(update={"chunk_tokens": 128})) != content_version(
        doc, settings
    )


def test_a_document_that_cannot_be_chunked_is_skipped_and_the_rest_synced(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, settings = make_engine(sources(tmp_path))
    real_split = engine.chunker.split

    def split(doc):  # a document whose text trips the chunker (as odd wide tables once did)
        if doc.id == "People Ops/Meal allowances.csv":
            raise IndexError("list index out of range")
        return real_split(doc)

    monkeypatch.setattr(engine.chunker, "split", split)
    (report,) = run_sync(settings, engine.index_writer(), source="people-drive")
    assert counts(report) == (2, 0, 0, 0) and report.error is None
    assert report.skipped == [
        (
            "People Ops/Meal allowances.csv",
            "could not be chunked (IndexError: list index out of range); kept any indexed version",
        )
    ]
    assert set(engine.index_writer().document_versions("people-drive")) == {
        "drive:1sAmPlEeXpEnSeSpOlIcY0000000000",
        "IT Help/VPN how-to.md",
    }
