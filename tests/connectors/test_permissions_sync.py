"""A change of who may read a document takes effect on the next sync: written on its points without re-embedding,
a narrowing at once (before the sync commits), and no answer cached before it is served again. Real engine, real
embedded store, real Confluence XML exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rag_core.indexing
from connectors.sync import run_sync
from rag_core.permissions import Audience
from rag_core.settings import SourceConfig
from rag_core.store import Where
from rag_core.types import Chunk
from tests.connectors import exports

CEO = "user:ceo@acme.test"
QUESTION = "What is the acquisition codename?"
SECRET = "Nightingale"


def export(folder: Path, restricted_to: tuple[str, ...] = (), codename: str = SECRET) -> Path:
    space = (
        exports.XmlSpace()
        .user("8a7f0001", "ceo", "ceo@acme.test")
        .page("3001", "Operations Home", "<p>Start here for operations: backups, restores and on-call.</p>")
        .page(
            "3002",
            "Acquisition",
            f"<p>The acquisition codename is {codename}. The purchase of the robotics startup closes in March.</p>",
            parent="3001",
        )
        .page(
            "3003",
            "Backups",
            "<p>Nightly backups run at 02:00 UTC and are kept for 35 days.</p>",
            parent="3001",
        )
    )
    if restricted_to:
        space.restrict("3002", users=restricted_to)
    return space.write(folder)


def readers(engine, doc_id: str) -> list[list[str] | None]:
    where = Where(source="ops", doc_id=doc_id)
    return [p.get("readers") for p in engine.store.scroll(where, ["doc_id", "readers"])]


def cited(answer) -> set[str]:
    return {c.doc_id for c in answer.citations}


def test_narrowing_takes_effect_at_once_without_reembedding_and_no_cached_answer_survives(
    make_engine, tmp_path: Path
) -> None:
    folder = export(tmp_path / "ops")
    engine, settings = make_engine([SourceConfig(name="ops", kind="confluence", path=folder)])
    writer = engine.index_writer()
    first = run_sync(settings, writer)[0]
    assert (first.added, first.permissions_changed) == (3, 0)
    public = Audience.public()
    before = engine.answer(QUESTION, audience=public)
    assert "3002" in cited(before) and SECRET in before.text
    assert engine.answer(QUESTION, audience=public).cache_hit  # cached for the public audience

    export(folder, restricted_to=("8a7f0001",))
    seen_mid_sync: list[tuple[set[str], bool, str]] = []

    def during(source: str, done: int, total: int | None) -> None:
        if done == 2:  # page 3002 was just read; the sync has not committed
            answer = engine.answer(QUESTION, audience=public)
            seen_mid_sync.append((cited(answer), answer.cache_hit, answer.text))

    mark = writer.embedded_count
    second = run_sync(settings, writer, on_document=during)[0]

    assert writer.embedded_count == mark  # not one embedding for a permission change
    assert (second.added, second.updated, second.unchanged, second.permissions_changed) == (0, 0, 3, 1)
    assert "1 with changed permissions" in second.summary()
    assert second.index_version == first.index_version + 1 == engine.index_version
    [(mid_cited, mid_hit, mid_text)] = seen_mid_sync
    assert "3002" not in mid_cited and not mid_hit and SECRET not in mid_text  # narrowed before the commit
    after = engine.answer(QUESTION, audience=public)
    assert not after.cache_hit and "3002" not in cited(after) and SECRET not in after.text
    assert readers(engine, "3002") == [[CEO]]
    assert readers(engine, "3003") == [["*"]]
    ceo = engine.answer(QUESTION, audience=Audience.of([CEO]))
    assert "3002" in cited(ceo) and SECRET in ceo.text

    # Widening back is a permission change too; the page is public again, still without embedding.
    export(folder)
    # answers above may embed their quoted sentences (answerability); a sync may not
    mark = writer.embedded_count
    third = run_sync(settings, writer)[0]
    assert (third.permissions_changed, writer.embedded_count) == (1, mark)
    assert "3002" in cited(engine.answer(QUESTION, audience=public))
    # Nothing changed: no commit, the index version (and the cache) kept.
    fourth = run_sync(settings, writer)[0]
    assert (fourth.permissions_changed, fourth.index_version) == (0, third.index_version)


def test_an_edited_page_narrowed_in_the_same_sync_is_hidden_old_and_new(make_engine, tmp_path: Path) -> None:
    folder = export(tmp_path / "ops")
    engine, settings = make_engine([SourceConfig(name="ops", kind="confluence", path=folder)])
    writer = engine.index_writer()
    run_sync(settings, writer)
    export(folder, restricted_to=("8a7f0001",), codename="Kingfisher")
    seen: list[set[str]] = []
    report = run_sync(
        settings,
        writer,
        on_document=lambda s, done, t: seen.append(cited(engine.answer(QUESTION))) if done == 2 else None,
    )[0]
    assert (report.updated, report.permissions_changed) == (1, 1)
    assert seen == [seen[0]] and "3002" not in seen[0]  # the old version, still live, was narrowed at once
    assert readers(engine, "3002") == [[CEO]]
    assert "Kingfisher" in engine.answer(QUESTION, audience=Audience.of([CEO])).text


def test_points_written_before_permissions_are_public_and_get_readers_on_the_next_sync(
    make_engine, tmp_path: Path, monkeypatch
) -> None:
    folder = export(tmp_path / "ops")
    engine, settings = make_engine([SourceConfig(name="ops", kind="confluence", path=folder)])
    writer = engine.index_writer()
    written_by_the_old_release = rag_core.indexing.chunk_payload

    def without_readers(chunk: Chunk, version: str, gen: int) -> dict[str, Any]:
        payload = written_by_the_old_release(chunk, version, gen)
        del payload["readers"]
        return payload

    monkeypatch.setattr(rag_core.indexing, "chunk_payload", without_readers)
    run_sync(settings, writer)
    monkeypatch.undo()
    assert readers(engine, "3002") == [None]
    assert "3002" in cited(engine.answer(QUESTION, audience=Audience.public()))  # no field: public

    export(folder, restricted_to=("8a7f0001",))
    mark = writer.embedded_count
    report = run_sync(settings, writer)[0]
    assert writer.embedded_count == mark
    assert (report.permissions_changed, report.readers_backfilled, report.unchanged) == (1, 2, 3)
    assert readers(engine, "3001") == readers(engine, "3003") == [["*"]]
    assert readers(engine, "3002") == [[CEO]]
    assert "3002" not in cited(engine.answer(QUESTION, audience=Audience.public()))
