"""Parsing in worker processes: the same documents and chunks as in-process, and a crashing parser skips one file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import connectors.drive
from connectors.archive import Limits
from connectors.formats import Extracted, extract
from connectors.parse_pool import resolve, workers_for
from connectors.registry import make_reader
from connectors.sync import run_sync
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document
from tests.conftest import make_settings
from tests.connectors import exports


def generated_space(tmp_path: Path, pages: int = 12) -> Path:
    """The bundled Confluence sample (pages with attachments) plus `pages` generated pages without any."""
    space = exports.copy_sample("confluence-eng", tmp_path)
    for n in range(pages):
        body = "".join(
            f"<h2>Part {p}</h2><p>Page {n} paragraph {p}: the deploy train leaves at {p} pm.</p>"
            for p in range(8)
        )
        (space / f"Generated-{n}_{70000 + n}.html").write_text(
            exports.confluence_page(f"Generated {n}", body)
        )
    (space / "Empty_79999.html").write_text("")  # skipped with a reason, in either mode
    return space


def read_all(config: SourceConfig, settings: Settings, workers: int) -> list[object]:
    return list(resolve(make_reader(config, settings).items(), workers))


@pytest.mark.parametrize("kind,sample", [("confluence", None), ("drive", "drive-people")])
def test_workers_yield_the_same_documents_and_chunks_in_the_same_order(
    kind: str, sample: str | None, small_engine, tmp_path: Path
) -> None:
    path = generated_space(tmp_path) if sample is None else exports.copy_sample(sample, tmp_path)
    settings = make_settings(tmp_path / "data")
    config = SourceConfig(name="src", kind=kind, path=path)

    here, pooled = read_all(config, settings, 0), read_all(config, settings, 2)

    assert here == pooled and len(here) >= 3
    docs = [item for item in here if isinstance(item, Document)]
    chunker = small_engine.index_writer().chunker
    assert [c.text for d in docs for c in chunker.split(d)] == [
        c.text for d in pooled if isinstance(d, Document) for c in chunker.split(d)
    ]


def test_a_sync_with_workers_reports_what_an_in_process_sync_reports(make_engine, tmp_path: Path) -> None:
    config = SourceConfig(name="eng-wiki", kind="confluence", path=generated_space(tmp_path))
    engine, settings = make_engine([config], parse_workers=2)
    (pooled,) = run_sync(settings, engine.index_writer())
    (again,) = run_sync(settings.model_copy(update={"parse_workers": 0}), engine.index_writer(), full=True)

    assert pooled.ok and pooled.added == again.updated == 19 and pooled.chunks_written == again.chunks_written
    assert pooled.skipped == again.skipped and [p for p, _ in pooled.skipped] == ["Empty_79999.html"]


def crash_on_some(name: str, data: bytes, limits: Limits) -> Extracted:
    """A parser that kills its process on files named "crash…", as a segfaulting native parser would."""
    if name.startswith("crash"):
        os._exit(3)
    return extract(name, data, limits)


def test_a_crashing_parser_skips_its_file_and_the_sync_goes_on(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "drive"
    folder.mkdir()
    for n in range(6):
        (folder / f"note-{n}.md").write_text(f"# Note {n}\n\nRelease {n} ships on day {n}.\n")
    (folder / "crash-me.md").write_text("# Boom\n\nThis file kills its parser.\n")
    shutil.copy(folder / "note-0.md", folder / "note-9.md")
    monkeypatch.setattr(connectors.drive, "extract", crash_on_some)
    engine, settings = make_engine([SourceConfig(name="drive", kind="drive", path=folder)], parse_workers=2)

    (report,) = run_sync(settings, engine.index_writer())

    assert report.ok and report.added == 7
    assert report.skipped == [("crash-me.md", "the parser crashed on this file (its worker process died)")]


def test_workers_follow_the_setting_capped_at_the_cpus() -> None:
    assert workers_for(0) == workers_for(1) == 0
    assert workers_for(64) == (os.cpu_count() or 1 if (os.cpu_count() or 1) >= 2 else 0)
