"""Google Drive API v3 with a service account against a fake Drive (and its token endpoint), real google clients."""

from __future__ import annotations

import io
import logging

import pytest
from openpyxl import Workbook

from connectors.sync import run_sync
from rag_core.settings import SourceConfig
from tests.connectors.live.fake_drive import (
    DOC,
    FOLDER,
    SHEET,
    SLIDES,
    FakeDrive,
    File,
    rate_limited,
    service_account_json,
)
from tests.connectors.live.fake_http import Reply
from tests.connectors.live.test_confluence_api import indexed


def xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def drive(**kwargs) -> FakeDrive:
    api = FakeDrive(**kwargs)
    api.put(
        File(
            "d1",
            "Onboarding",
            DOC,
            b"<html><body><h1>Welcome</h1><p>Laptops ship on day one.</p></body></html>",
        )
    )
    api.put(File("s1", "Budget", SHEET, xlsx([["team", "budget"], ["ops", "12000"]])))
    api.put(
        File(
            "p1",
            "Roadmap",
            SLIDES,
            "Q3 roadmap: launch the 日本語 search.".encode(),
            permissions=[
                {"type": "user", "emailAddress": "CEO@x.com", "role": "reader"},
                {"type": "group", "emailAddress": "leads@x.com", "role": "reader"},
            ],
        )
    )
    api.put(File("m1", "notes.md", "text/markdown", b"# Notes\n\nThe VPN is WireGuard."))
    api.put(File("i1", "logo.png", "image/png", b"\x89PNG..."))
    return api


@pytest.fixture
def key(monkeypatch, serve):
    def setup(api: FakeDrive) -> None:
        monkeypatch.setenv("TEST_DRIVE_KEY", service_account_json(f"{api.base}/token"))

    return setup


def source(api: FakeDrive, **extra) -> SourceConfig:
    return SourceConfig(name="drive", kind="drive_api", url=api.base, token_env="TEST_DRIVE_KEY", **extra)


def test_first_sync_lists_files_then_changes_list_brings_edits_trash_deletions_and_permissions(
    make_engine, serve, key
) -> None:
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    assert report.added == 4 and [r for _, r in report.skipped] == ["unsupported file type png"]
    docs = indexed(engine, "drive")
    assert docs["d1"]["url"] == "https://docs.google.com/d/d1/view" and "Laptops ship" in docs["d1"]["text"]
    assert "12000" in docs["s1"]["text"] and "日本語" in docs["p1"]["text"]
    assert docs["p1"]["readers"] == ["group:leads@x.com", "user:ceo@x.com"] and docs["d1"]["readers"] == ["*"]
    assert api.calls("/files/d1/export") == 1 and api.calls("/files/m1") == 1  # alt=media

    api.touch("d1", content=b"<html><body><p>Laptops ship in week one.</p></body></html>")
    api.touch("s1", trashed=True)
    api.remove("m1")
    api.touch("p1", permissions=[{"type": "anyone", "role": "reader"}])
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    # d1 edited; p1's permissions alone changed: its readers are rewritten, not re-embedded
    assert (report.added, report.updated, report.permissions_changed, report.deleted) == (0, 1, 1, 2), report
    paths = [r.path for r in api.requests[before:]]
    assert "/drive/v3/files" not in paths and paths.count("/drive/v3/changes") == 1
    docs = indexed(engine, "drive")
    assert set(docs) == {"d1", "p1"} and docs["p1"]["readers"] == ["*"] and "week one" in docs["d1"]["text"]

    (report,) = run_sync(settings, engine.index_writer())  # nothing changed: a token, one changes.list call
    assert (report.added, report.updated, report.deleted, report.api_calls) == (0, 0, 0, 2)


def test_folders_are_walked_and_a_file_moved_out_is_deleted(make_engine, serve, key) -> None:
    api = serve(drive())
    api.put(File("f1", "Handbook", FOLDER))
    api.put(File("f2", "Policies", FOLDER, parents=["f1"]))
    api.put(File("h1", "leave.md", "text/markdown", b"# Leave\n\n25 days a year.", parents=["f2"]))
    api.put(File("h2", "travel.md", "text/markdown", b"# Travel\n\nBook through Navan.", parents=["f1"]))
    key(api)
    engine, settings = make_engine([source(api, folders=["f1"])])
    (report,) = run_sync(settings, engine.index_writer())
    assert set(indexed(engine, "drive")) == {"h1", "h2"}
    api.touch("h2", parents=["root"])
    api.put(File("f3", "New", FOLDER, parents=["f2"]))
    api.put(File("h3", "remote.md", "text/markdown", b"# Remote\n\nWork from anywhere.", parents=["f3"]))
    (report,) = run_sync(settings, engine.index_writer())
    assert (report.added, report.deleted) == (1, 1)
    assert set(indexed(engine, "drive")) == {"h1", "h3"}


def test_shared_drive_files_get_their_permissions_from_permissions_list(make_engine, serve, key) -> None:
    api = serve(FakeDrive())
    api.hide_permissions = True
    api.put(
        File(
            "x1",
            "plan.md",
            "text/markdown",
            b"# Plan\n\nShip it.",
            drive_id="0AB",
            permissions=[{"type": "user", "emailAddress": "pm@x.com", "role": "reader"}],
        )
    )
    key(api)
    engine, settings = make_engine([source(api, drive_id="0AB")])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and indexed(engine, "drive")["x1"]["readers"] == ["user:pm@x.com"]
    assert api.calls("/files/x1/permissions") == 1


def test_a_revoked_key_fails_in_one_line_and_the_index_keeps_serving(make_engine, serve, key, caplog) -> None:
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    api.grant_ok = False
    api.tokens_issued = 100  # the cached access token is refused from now on
    caplog.set_level(logging.DEBUG)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error and "\n" not in report.error
    assert "TEST_DRIVE_KEY" in report.error and "drive.readonly" in report.error
    assert "PRIVATE KEY" not in caplog.text and "PRIVATE KEY" not in report.error
    assert len(indexed(engine, "drive")) == 4


def test_rate_limit_403s_and_429s_are_retried_and_an_export_too_large_is_skipped(
    make_engine, serve, key
) -> None:
    api = serve(drive())
    api.fail("/drive/v3/files", 403, rate_limited())
    api.fail("/drive/v3/files", 429)
    api.fail(
        "/files/d1/export",
        403,
        {
            "error": {
                "code": 403,
                "message": "This file is too large to be exported.",
                "errors": [{"reason": "exportSizeLimitExceeded"}],
            }
        },
    )
    key(api)
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    assert report.added == 3
    assert (
        "Onboarding",
        "over Drive's export size limit (10 MB); kept any indexed version",
    ) in report.skipped


def test_a_bad_key_is_one_line(make_engine, serve, monkeypatch) -> None:
    api = serve(drive())
    monkeypatch.setenv("TEST_DRIVE_KEY", "{not json")
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert (
        report.error == "drive: environment variable TEST_DRIVE_KEY does not hold a service-account JSON key"
    )


def test_a_load_cut_short_resumes_from_its_files_list_page(make_engine, serve, key, monkeypatch) -> None:
    import connectors.drive_api.connector as drive_connector

    monkeypatch.setattr(drive_connector, "PAGE_SIZE", 2)
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api)], live_batch_documents=1, live_max_retries=0)
    failed: list[str] = []
    original = api.route

    def route(req):  # the second page of files.list fails once
        if req.path == "/drive/v3/files" and req.arg("pageToken") == "2" and not failed:
            failed.append(req.path)
            return Reply(500, {"error": {"code": 500, "message": "backend error"}})
        return original(req)

    api.route = route
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error and "HTTP 500" in report.error
    assert set(indexed(engine, "drive")) == {"d1"}  # the first page (d1, and logo.png skipped) was committed
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    lists = [r for r in api.requests[before:] if r.path == "/drive/v3/files"]
    assert lists[0].arg("pageToken") == "2"  # resumed where the committed batch ended
    assert api.calls("/changes/startPageToken") == 1  # the load's start token was kept
    assert set(indexed(engine, "drive")) == {"d1", "m1", "p1", "s1"}


def test_domain_wide_delegation_signs_in_as_the_subject_with_the_read_only_scope(
    make_engine, serve, key
) -> None:
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api, subject="reader@x.com")])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok
    assert api.claims["sub"] == "reader@x.com"
    assert api.claims["scope"] == "https://www.googleapis.com/auth/drive.readonly"
    assert api.claims["iss"] == "ragbot@ragbot-test.iam.gserviceaccount.com"


def test_a_sharing_change_rewrites_readers_without_an_export_and_a_content_change_is_read_again(
    make_engine, serve, key
) -> None:
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    # p1 loses its CEO reader (sharing only: modifiedTime stays); d1 is edited and shared in the same poll
    api.touch("p1", permissions=[{"type": "group", "emailAddress": "leads@x.com", "role": "reader"}])
    api.touch("d1", content=b"<html><body><p>Laptops ship in week two.</p></body></html>")
    api.touch("d1", permissions=[{"type": "user", "emailAddress": "it@x.com", "role": "reader"}])
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    paths = [r.path for r in api.requests[before:]]
    assert "/drive/v3/files/p1/export" not in paths and paths.count("/drive/v3/files/d1/export") == 1
    assert (report.updated, report.permissions_changed) == (1, 1), report
    docs = indexed(engine, "drive")
    assert docs["p1"]["readers"] == ["group:leads@x.com"]  # the CEO no longer reads it, from this sync on
    assert docs["d1"]["readers"] == ["user:it@x.com"] and "week two" in docs["d1"]["text"]


def test_without_a_stored_stamp_or_a_modification_time_a_change_is_exported_again(
    make_engine, serve, key
) -> None:
    api = serve(drive())
    key(api)
    engine, settings = make_engine([source(api)])
    writer = engine.index_writer()
    run_sync(settings, writer)
    # a checkpoint written before stamps existed: nothing vouches for the content, so it is read again
    meta = writer.store.read_meta()
    state = dict(meta["live_checkpoint:drive"])
    state["cursor"] = {k: v for k, v in state["cursor"].items() if k != "stamps"}
    with writer.begin() as tx:
        tx.write_meta({"live_checkpoint:drive": state})
        tx.abort()
    api.touch("p1", permissions=[{"type": "anyone", "role": "reader"}])
    before = len(api.requests)
    (report,) = run_sync(settings, writer)
    assert (
        report.ok
        and api.calls("/files/p1/export") == 2
        and indexed(engine, "drive")["p1"]["readers"] == ["*"]
    )
    # now stamped again: a file whose modification time Drive leaves out is never trusted to be unchanged
    api.files["p1"].modified = ""
    api.touch("p1", permissions=[{"type": "user", "emailAddress": "a@x.com", "role": "reader"}])
    (report,) = run_sync(settings, writer)
    assert api.calls("/files/p1/export") == 3 and indexed(engine, "drive")["p1"]["readers"] == [
        "user:a@x.com"
    ]
    assert len(api.requests) > before


def test_a_sharing_change_on_a_shared_drive_reads_permissions_and_its_failure_keeps_the_checkpoint(
    make_engine, serve, key
) -> None:
    api = serve(FakeDrive())
    api.hide_permissions = True
    who = [{"type": "user", "emailAddress": "pm@x.com", "role": "reader"}]
    api.put(File("x1", "plan.md", "text/markdown", b"# Plan\n\nShip it.", drive_id="0AB", permissions=who))
    key(api)
    engine, settings = make_engine([source(api, drive_id="0AB")], live_max_retries=1)
    writer = engine.index_writer()
    run_sync(settings, writer)
    loaded = len(api.requests)
    api.touch("x1", permissions=[{"type": "user", "emailAddress": "cfo@x.com", "role": "reader"}])
    for _ in range(settings.live_max_retries + 1):
        api.fail("/files/x1/permissions", 500)
    (report,) = run_sync(settings, writer)
    assert not report.ok and "HTTP 500" in (report.error or "")
    assert indexed(engine, "drive")["x1"]["readers"] == ["user:pm@x.com"]  # not applied, nor forgotten:
    (report,) = run_sync(settings, writer)  # the next sync reads the same change again
    assert report.ok and indexed(engine, "drive")["x1"]["readers"] == ["user:cfo@x.com"]
    later = [r for r in api.requests[loaded:] if r.path.startswith("/drive/v3/files")]
    assert {r.path for r in later} == {"/drive/v3/files/x1/permissions"}  # no download: 2 failed + 1


def test_a_file_the_service_account_only_views_is_skipped_with_why_and_fails_nothing(
    make_engine, serve, key
) -> None:
    """Drive shows a My Drive file's sharing only to whoever may share it (`capabilities.canShare`;
    `permissions.list` answers 403 otherwise): a file the service account only views cannot say who may read it.
    It is skipped with the reason and the fix, never indexed and never failing the sync; a file whose sharing the
    account could read and no longer can leaves the index."""
    api = serve(drive())
    api.put(File("v1", "viewer.md", "text/markdown", b"# Viewer\n\nOnly viewed.", can_share=False))
    key(api)
    engine, settings = make_engine([source(api)])
    writer = engine.index_writer()
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    docs = indexed(engine, "drive")
    assert "v1" not in docs and {"d1", "m1"} <= set(docs)
    (reason,) = [why for where, why in report.skipped if where == "viewer.md"]
    assert "cannot see who may read it" in reason and "Editor" in reason
    assert api.calls("/files/v1/permissions") == 0  # told by capabilities.canShare: no request made to fail
    api.touch("m1", can_share=False)  # sharing only: its content stamp is unchanged
    (poll,) = run_sync(settings, writer)
    assert poll.ok, poll.error
    assert "m1" not in indexed(engine, "drive") and poll.deleted == 1


def test_a_403_on_a_files_permissions_that_can_share_did_not_predict_skips_that_file_only(
    make_engine, serve, key
) -> None:
    """`permissions.list` refusing one file (403 insufficientFilePermissions: on a shared drive, or a sharing
    right lost between the listing and the call) skips that file, with why, and takes it out of the index; the
    rest of the load and of the poll goes on, as for a file the listing already said was only viewed."""
    api = serve(FakeDrive())
    api.hide_permissions = True
    who = [{"type": "user", "emailAddress": "pm@x.com", "role": "reader"}]
    api.put(File("x1", "plan.md", "text/markdown", b"# Plan\n\nShip it.", drive_id="0AB", permissions=who))
    api.put(File("x2", "risks.md", "text/markdown", b"# Risks\n\nNone.", drive_id="0AB", permissions=who))
    api.forbid_permissions = {"x2"}
    key(api)
    engine, settings = make_engine([source(api, drive_id="0AB")])
    writer = engine.index_writer()
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    assert set(indexed(engine, "drive")) == {"x1"}
    (reason,) = [why for where, why in report.skipped if where == "risks.md"]
    assert "cannot see who may read it" in reason
    api.forbid_permissions = {"x1"}
    api.touch(
        "x1", permissions=[{"type": "user", "emailAddress": "cfo@x.com", "role": "reader"}]
    )  # sharing only
    (poll,) = run_sync(settings, writer)
    assert poll.ok, poll.error
    assert "x1" not in indexed(engine, "drive") and poll.deleted == 1


def test_a_folder_added_to_the_source_is_walked_at_the_next_poll(make_engine, serve, key) -> None:
    """Its files changed before the stored change token: `changes.list` alone would never bring them (before,
    only `--full` did). A poll walks the new folder once, then follows it by changes like the others."""
    api = serve(drive())
    api.put(File("f1", "Handbook", FOLDER))
    api.put(File("h1", "leave.md", "text/markdown", b"# Leave\n\n25 days a year.", parents=["f1"]))
    api.put(File("g1", "Guides", FOLDER))
    api.put(File("g2", "Deep", FOLDER, parents=["g1"]))
    api.put(File("k1", "oncall.md", "text/markdown", b"# On call\n\nPage the secondary.", parents=["g2"]))
    key(api)
    engine, settings = make_engine([source(api, folders=["f1"])])
    writer = engine.index_writer()
    run_sync(settings, writer)
    assert set(indexed(engine, "drive")) == {"h1"}
    wider = settings.model_copy(update={"sources": [source(api, folders=["f1", "g1"])]})
    (poll,) = run_sync(wider, writer)
    assert poll.ok, poll.error
    assert set(indexed(engine, "drive")) == {"h1", "k1"} and poll.added == 1
    api.touch("k1", content=b"# On call\n\nPage the primary first.")  # followed by changes from now on
    (again,) = run_sync(wider, writer)
    assert again.ok and again.updated == 1 and "primary" in indexed(engine, "drive")["k1"]["text"]
