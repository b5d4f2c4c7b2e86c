"""Exports that go bad between syncs (issue 10, items 7–13): real folders, real zips, real unreadable paths.

Unreadable paths use tests/unreadable.py: `chmod 000` plus dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH for the
test thread, so the kernel refuses the read even though the tests run as root (nothing in Python is patched).
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from bot.conversation import make_resync
from connectors import schedule
from connectors.archive import Limits, open_export
from connectors.cli import sync_command
from connectors.errors import ExtractError
from connectors.formats import extract
from connectors.sync import SyncReport, run_sync
from rag_core.engine import Engine
from rag_core.kv import make_kv
from rag_core.settings import SourceConfig
from tests.connectors import exports
from tests.connectors.test_confluence import XML_EXPORT, read
from tests.unreadable import unreadable

LIMITS = Limits(max_file_bytes=10_000_000, max_export_bytes=100_000_000, max_zip_ratio=100.0)


def counts(report: SyncReport) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.deleted, report.unchanged


def drive_source(tmp_path: Path) -> SourceConfig:
    return SourceConfig(name="people-drive", kind="drive", path=exports.copy_sample("drive-people", tmp_path))


def wiki_source(tmp_path: Path, path: Path | None = None) -> SourceConfig:
    return SourceConfig(
        name="eng-wiki", kind="confluence", path=path or exports.copy_sample("confluence-eng", tmp_path)
    )


# --- 7: an unreadable folder is skipped with a reason and keeps what it held ----------------------------------


def test_an_unreadable_drive_folder_keeps_its_documents(make_engine, tmp_path: Path) -> None:
    config = drive_source(tmp_path)
    engine, settings = make_engine([config])
    writer = engine.index_writer()
    run_sync(settings, writer)
    before = writer.document_versions("people-drive")
    it_help = config.path / "Takeout" / "Drive" / "IT Help"

    with unreadable(it_help):
        with pytest.raises(PermissionError):
            os.listdir(it_help)  # the fault is real for this thread, root or not
        (report,) = run_sync(settings, writer)

    assert report.error is None and report.deleted == 0
    assert report.skipped == [
        ("Takeout/Drive/IT Help/", "cannot read the folder: Permission denied; kept its indexed documents")
    ]
    assert writer.document_versions("people-drive") == before


def test_an_unreadable_attachments_folder_keeps_its_attachments_only(make_engine, tmp_path: Path) -> None:
    config = wiki_source(tmp_path)
    engine, settings = make_engine([config])
    writer = engine.index_writer()
    run_sync(settings, writer)
    assert "65538/65550.csv" in writer.document_versions("eng-wiki")
    (config.path / "Operations_65541.html").unlink()  # a real deletion in the same sync still happens

    with unreadable(config.path / "attachments" / "65538"):
        (report,) = run_sync(settings, writer)

    assert report.skipped == [
        ("attachments/65538/", "cannot read the folder: Permission denied; kept its indexed documents")
    ]
    assert (report.deleted, report.error) == (1, None)
    versions = writer.document_versions("eng-wiki")
    assert "65538/65550.csv" in versions and "65541" not in versions


# --- 8: one damaged zip member is skipped with its reason ----------------------------------------------------


def _break_deflate_data(zip_path: Path, member: str) -> None:
    """Overwrite the start of one member's deflate stream; the central directory stays intact."""
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo(member)
    raw = bytearray(zip_path.read_bytes())
    at = info.header_offset
    name_len = int.from_bytes(raw[at + 26 : at + 28], "little")
    extra_len = int.from_bytes(raw[at + 28 : at + 30], "little")
    data = at + 30 + name_len + extra_len
    raw[data : data + 8] = b"\xff" * 8  # an invalid block type: zlib raises zlib.error, not a CRC error
    zip_path.write_bytes(bytes(raw))


def test_a_damaged_zip_member_is_skipped_and_the_rest_syncs(make_engine, tmp_path: Path) -> None:
    space = exports.copy_sample("confluence-eng", tmp_path)
    zip_path = exports.zip_folder(space, tmp_path / "ENG.zip", prefix="ENG/")
    engine, settings = make_engine([wiki_source(tmp_path, zip_path)])
    writer = engine.index_writer()
    run_sync(settings, writer)
    before = writer.document_versions("eng-wiki")
    (space / "Operations_65541.html").unlink()
    exports.zip_folder(space, zip_path, prefix="ENG/")
    _break_deflate_data(zip_path, "ENG/On-call-runbook_65538.html")

    (report,) = run_sync(settings, writer)

    assert report.error is None
    ((path, reason),) = report.skipped
    assert path == "ENG/On-call-runbook_65538.html"
    assert reason.startswith("corrupt zip member (Error -3 while decompressing data")
    assert report.deleted == 1  # the update happened despite the damaged member
    versions = writer.document_versions("eng-wiki")
    assert versions["65538"] == before["65538"] and "65541" not in versions


# --- 9: a page emptied in Confluence is an empty document ----------------------------------------------------


def test_an_emptied_page_loses_its_chunks(make_engine, tmp_path: Path) -> None:
    config = wiki_source(tmp_path)
    engine, settings = make_engine([config])
    writer = engine.index_writer()
    run_sync(settings, writer)
    page = config.path / "Operations_65541.html"
    # Confluence exports an emptied page with its frame (title, breadcrumbs, metadata) but no div#main-content.
    framed = exports.confluence_page("Operations", "")
    page.write_text(framed.replace('<div id="main-content" class="wiki-content group">', "<div>"))

    (report,) = run_sync(settings, writer)

    assert report.deleted == 1 and ("Operations_65541.html", "page has no text") in report.skipped
    assert "65541" not in writer.document_versions("eng-wiki")
    assert not [
        c for c in engine.sources("operations team weekly review meeting", k=10) if c.doc_id == "65541"
    ]


# --- 10: one lock per source for everything in a process ------------------------------------------------------


def test_a_scheduled_run_during_a_chat_resync_skips_instead_of_re_embedding(
    make_engine, tmp_path: Path
) -> None:
    config = drive_source(tmp_path)
    engine, settings = make_engine([config])
    writer = engine.index_writer()
    # The chat adapters build their resync over their own store (`make_kv`); the schedule over its own.
    resync = make_resync(engine, settings, make_kv(settings.redis_url))
    schedule.configure(schedule.BackgroundScheduler(), settings, writer)
    inside, release = threading.Event(), threading.Event()

    def progress(line: str) -> None:
        if line.endswith("syncing…"):
            inside.set()
            release.wait(30)

    manual = threading.Thread(target=resync, args=(None, False, progress))
    manual.start()
    assert inside.wait(30)
    start = writer.embedded_count
    schedule.scheduled_sync("people-drive")  # the in-process schedule fires while the manual sync runs
    during = writer.embedded_count - start
    release.set()
    manual.join(60)

    assert during == 0
    reports = sorted((settings.data_dir / "sync-reports" / "people-drive").glob("*.json"))
    assert len(reports) == 2 and "another sync of this source is running" in reports[0].read_text()
    assert len(writer.document_versions("people-drive")) == 3


# --- 11: one word per line in a PDF's text layer ------------------------------------------------------------


def test_pdf_text_with_one_word_per_line_is_joined_into_sentences() -> None:
    sentence = "Authentication uses single sign-on. Ask IT for access."
    text = extract("auth.pdf", exports.text_pdf(sentence.split()), LIMITS).text
    assert text == sentence
    from connectors.formats import _reflow

    assert _reflow("Nightly\nbackups\nrun.\n\nRestores\ngo\nto\nstaging.") == (
        "Nightly backups run.\n\nRestores go to staging."  # blank lines in the text layer stay paragraphs
    )
    ordinary = extract("x.pdf", exports.text_pdf(["Line one of a page.", "Line two of it."]), LIMITS).text
    assert ordinary == "Line one of a page.\nLine two of it."  # lines of several words keep their layout


# --- 12: a sync that changes nothing keeps the index version ---------------------------------------------------


def test_a_no_op_sync_keeps_the_index_version_and_the_answer_cache(make_engine, tmp_path: Path) -> None:
    config = drive_source(tmp_path)
    engine, settings = make_engine([config])
    writer = engine.index_writer()
    (first,) = run_sync(settings, writer)
    question = "How do I set up the VPN?"
    assert not engine.answer(question).cache_hit

    (again,) = run_sync(settings, writer)

    assert (
        counts(again) == (0, 0, 0, 3) and again.index_version == first.index_version == engine.index_version
    )
    assert engine.answer(question).cache_hit
    (config.path / "Takeout" / "Drive" / "IT Help" / "VPN how-to.md").unlink()
    (changed,) = run_sync(settings, writer)
    assert changed.index_version == first.index_version + 1 and not engine.answer(question).cache_hit


# --- 13: messages that say what is wrong -----------------------------------------------------------------------


def test_an_unreadable_export_folder_says_so(make_engine, tmp_path: Path) -> None:
    config = wiki_source(tmp_path)
    engine, settings = make_engine([config])
    with unreadable(config.path):
        (report,) = run_sync(settings, engine.index_writer())
    assert report.error == f"export folder {config.path} cannot be read: Permission denied"


def test_a_zero_byte_page_says_empty_and_keeps_its_version(settings, tmp_path: Path) -> None:
    space = exports.copy_sample("confluence-eng", tmp_path)
    (space / "Operations_65541.html").write_bytes(b"")
    _, skipped = read(settings, space)
    assert [(s.path, s.reason, s.doc_id) for s in skipped] == [
        ("Operations_65541.html", "page file is empty (0 bytes); kept any indexed version", "65541")
    ]


def test_an_xml_export_with_only_drafts_succeeds_with_a_reason(make_engine, tmp_path: Path) -> None:
    folder = tmp_path / "OPS"
    folder.mkdir()
    xml = (XML_EXPORT / "entities.xml").read_text()
    (folder / "entities.xml").write_text(xml.replace("<![CDATA[current]]>", "<![CDATA[draft]]>"))
    engine, settings = make_engine([wiki_source(tmp_path, folder)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error is None and report.added == 0
    assert report.skipped == [
        ("entities.xml", "no published page: the export holds 3 draft or deleted page(s)")
    ]


def test_entities_xml_is_not_held_to_max_file_bytes(settings, tmp_path: Path) -> None:
    small = settings.model_copy(update={"max_file_bytes": 1000})
    assert (XML_EXPORT / "entities.xml").stat().st_size > 1000
    docs, _ = read(small, XML_EXPORT)
    assert set(docs) == {"3001", "3002"}
    with open_export(XML_EXPORT, Limits.from_settings(small)) as export:
        export.entries()
        with pytest.raises(ExtractError, match="over the max_export_bytes limit of 10"):
            export.read_bytes("entities.xml", max_bytes=10)


def test_sync_command_counts_skips_by_reason_and_lists_them_with_verbose(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = drive_source(tmp_path)
    drive = config.path / "Takeout" / "Drive"
    for i in range(40):
        (drive / f"logo{i}.png").write_bytes(b"\x89PNG")
    (drive / "huge.md").write_bytes(b"x" * 30_000)
    (drive / "bigger.md").write_bytes(b"x" * 40_000)
    engine, settings = make_engine([config], max_file_bytes=20_000)
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: engine))

    out = io.StringIO()
    sync_command(argparse.Namespace(source=None, full=False, verbose=False), settings, out)
    lines = out.getvalue().splitlines()[2:]
    assert lines == [
        "skipped [people-drive] 40 × unsupported file type .png",
        "skipped [people-drive] 2 × file is … bytes, over the max_file_bytes limit of …",
        "(42 skipped in all; --verbose lists each file and its reason)",
    ]

    again, _ = make_engine([config], max_file_bytes=20_000)  # the command closed its engine: open a new one
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: again))
    verbose = io.StringIO()
    sync_command(argparse.Namespace(source=None, full=False, verbose=True), settings, verbose)
    listed = [line for line in verbose.getvalue().splitlines() if line.startswith("skipped [")]
    assert (
        len(listed) == 42
        and "skipped [people-drive] Takeout/Drive/logo7.png: unsupported file type .png" in listed
    )
