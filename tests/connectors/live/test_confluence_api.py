"""Confluence over REST (Cloud and Data Center) against a fake server, through the real sync and a real index."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest

from connectors.live_sync import stored_state
from connectors.sync import run_sync
from rag_core.settings import SourceConfig
from rag_core.store import Where
from tests.conftest import ROOT
from tests.connectors.live.fake_confluence import T0, FakeConfluence, Page

TOKEN = "ATATT3xFfGF0-very-secret-confluence-token"


def wiki(flavor: str = "cloud") -> FakeConfluence:
    api = FakeConfluence(flavor, token=TOKEN, email="bot@example.com" if flavor == "cloud" else None)
    api.add_space("ENG", "Engineering", read_groups=["eng"])
    api.add_space("OPS", "Operations", anonymous=True)
    # Last edited days ago: a poll's 14-hour overlap reaches back to the newest of them only.
    days = [T0 - timedelta(days=n) for n in (5, 4, 3, 2)]
    api.add_page(
        Page(
            "101",
            "ENG",
            "Deploys",
            "<h1>Deploying</h1><p>We deploy with Argo CD every Tuesday.</p>",
            when=days[0],
        )
    )
    api.add_page(
        Page("102", "ENG", "On call", "<p>Paged through PagerDuty.</p>", ancestors=["101"], when=days[1])
    )
    api.add_page(
        Page(
            "103",
            "ENG",
            "Salaries",
            "<p>Salary bands are confidential.</p>",
            users=[{"email": "HR@x.com"}],
            groups=["legal"],
            when=days[2],
        )
    )
    api.add_page(
        Page("201", "OPS", "Café ☕ runbook", "<p>Redémarrer le serveur — 重启服务器.</p>", when=days[3])
    )
    return api


def source(api: FakeConfluence, **extra) -> SourceConfig:
    fields = {
        "name": "wiki",
        "kind": "confluence_api",
        "url": api.url(),
        "flavor": api.flavor,
        "spaces": ["ENG", "OPS"],
        "token_env": "TEST_CONFLUENCE_TOKEN",
    }
    if api.flavor == "cloud":
        fields["email"] = "bot@example.com"
    fields.update(extra)
    return SourceConfig(**fields)


@pytest.fixture(autouse=True)
def _token(monkeypatch) -> None:
    monkeypatch.setenv("TEST_CONFLUENCE_TOKEN", TOKEN)


def indexed(engine, source_name: str = "wiki") -> dict[str, dict]:
    writer = engine.index_writer()
    gen = writer.committed_generation()
    where = Where(source=source_name, gen_lte=gen, dead_gt=gen)
    points: dict[str, dict] = {}
    for p in writer.store.scroll(where, ["doc_id", "position", "readers", "url", "title", "text"]):
        assert (p["doc_id"], p["position"]) not in {(d, q) for d, q in points}, "duplicate chunk"
        points[(p["doc_id"], p["position"])] = p
    return {d: p for (d, q), p in points.items() if q == 0}


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_first_sync_loads_everything_then_a_poll_reads_only_what_changed(make_engine, serve, flavor) -> None:
    api = serve(wiki(flavor))
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    assert (report.added, report.updated, report.deleted) == (4, 0, 0)
    docs = indexed(engine)
    assert set(docs) == {"101", "102", "103", "201"}
    assert docs["101"]["url"] == f"{api.url()}/spaces/ENG/pages/101"
    assert docs["101"]["readers"] == ["group:eng"]  # the space's read permission
    assert docs["103"]["readers"] == ["group:legal", "user:hr@x.com"]  # the page's restrictions
    assert docs["201"]["readers"] == ["*"]  # anonymous space: everyone who may use the source
    assert "重启服务器" in docs["201"]["text"] and docs["201"]["title"] == "Café ☕ runbook"
    full_calls = report.api_calls

    api.edit("102", "<p>Paged through Opsgenie now.</p>")
    before = len(api.requests)
    lines: list[str] = []
    (report,) = run_sync(settings, engine.index_writer(), progress=lines.append)
    assert lines[:2] == ["wiki: syncing…", "wiki: polling changes…"] and lines[-1].startswith(
        "wiki: 0 added, 1 updated"
    )
    assert (report.added, report.updated, report.deleted) == (0, 1, 0)
    searches = [r for r in api.requests[before:] if r.path.endswith("/content/search")]
    assert len(searches) == 1 and "lastmodified >=" in searches[0].arg("cql")
    # spaces (REST v2 on Cloud), the permissions of each space, one search; then what is gone: on Cloud the v2
    # listing of pages and of blog posts, on Data Center v1 trashed content per space and type
    assert full_calls == (4 if flavor == "cloud" else 3)
    assert report.api_calls == (6 if flavor == "cloud" else 7)
    assert "Opsgenie" in indexed(engine)["102"]["text"]


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_a_page_under_a_restricted_page_is_read_only_by_whom_both_allow(make_engine, serve, flavor) -> None:
    """View restrictions inherit (as Confluence applies them): a page under a restricted page is read only by
    the people its ancestors allow, and with restrictions of its own by those both allow; at the first load and,
    after an ancestor's restriction changes, at the id listing."""
    api = serve(wiki(flavor))
    api.add_page(
        Page(
            "104",
            "ENG",
            "Bands by level",
            "<p>The L5 band.</p>",
            ancestors=["103"],  # Salaries: HR@x.com and the legal group
            users=[{"email": "hr@x.com"}, {"email": "ada@x.com"}],
        )
    )
    api.add_page(Page("105", "ENG", "Band history", "<p>Bands since 2019.</p>", ancestors=["103", "104"]))
    engine, settings = make_engine([source(api)], live_prune_every=2)
    writer = engine.index_writer()
    run_sync(settings, writer)
    docs = indexed(engine)
    assert docs["102"]["readers"] == ["group:eng"]  # its parent 101 has no restrictions: the space's readers
    assert docs["104"]["readers"] == ["user:hr@x.com"]  # in both lists (ada is not in 103's)
    assert docs["105"]["readers"] == ["user:hr@x.com"]  # none of its own: both ancestors' restrictions
    api.restrict("101", users=["lead@x.com"])  # 102's parent: neither page's lastmodified moves
    run_sync(settings, writer)  # a poll
    (pruned,) = run_sync(settings, writer)  # the id listing
    assert pruned.ok, pruned.error
    docs = indexed(engine)
    assert docs["101"]["readers"] == docs["102"]["readers"] == ["user:lead@x.com"]
    assert pruned.permissions_changed == 2 and pruned.chunks_written == 0


def test_a_trashed_ancestor_that_cloud_cannot_expand_is_read_apart(make_engine, serve) -> None:
    """Confluence Cloud answers 404 to a whole search expanding ancestors' restrictions when one result's
    ancestor is trashed or a draft (CONFCLOUD-77618): that request is made again without them, and the
    ancestors' restrictions are read with one `id in (…)` search; the one Cloud cannot return adds none."""
    api = serve(wiki())
    api.add_page(Page("106", "ENG", "Old salaries", "<p>Gone.</p>", ancestors=["103"], status="trashed"))
    api.add_page(Page("107", "ENG", "Band notes", "<p>Notes on bands.</p>", ancestors=["103", "106"]))
    engine, settings = make_engine([source(api)])
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    docs = indexed(engine)
    assert docs["107"]["readers"] == ["group:legal", "user:hr@x.com"]  # 103's restrictions still apply
    assert docs["102"]["readers"] == ["group:eng"] and docs["103"]["readers"] == [
        "group:legal",
        "user:hr@x.com",
    ]
    searches = [r for r in api.requests[before:] if r.path.endswith("/content/search")]
    assert "ancestors.restrictions" in searches[0].arg("expand")
    (apart,) = [r.arg("cql") or "" for r in searches[1:] if " and id in (" in (r.arg("cql") or "")]
    assert {"103", "106"} <= set(apart.split("id in (")[1].rstrip(")").split(","))


def test_trashed_and_archived_pages_go_at_the_next_poll_restriction_changes_at_the_id_listing(
    make_engine, serve
) -> None:
    api = serve(wiki())
    api.add_page(Page("301", "OPS", "Old news", "<p>Archived soon.</p>", when=T0 - timedelta(days=9)))
    api.add_page(Page("302", "OPS", "Launch post", "<p>We launched.</p>", type="blogpost"))
    api.pages["102"].attachments = [{"id": "att9", "title": "rota.md", "data": b"# Rota\n\nAda, Linus."}]
    engine, settings = make_engine([source(api)], live_prune_every=2)
    writer = engine.index_writer()
    run_sync(settings, writer)
    assert {"102", "102/att9", "301", "302"} <= set(indexed(engine))
    api.pages["102"].status = "trashed"  # with its attachment
    api.pages["301"].status = "archived"
    api.pages["302"].status = "trashed"
    api.restrict("101", users=["ada@x.com"])
    before = len(api.requests)
    (poll,) = run_sync(settings, writer)  # a poll: the v2 listing of what is gone, nothing in `lastmodified`
    gone = [r for r in api.requests[before:] if "/api/v2/pages" in r.path or "/api/v2/blogposts" in r.path]
    assert [(r.path.rsplit("/", 1)[-1], r.arg("status"), r.arg("space-id")) for r in gone] == [
        ("pages", "archived,trashed,deleted", "1000,1001"),
        ("blogposts", "trashed,deleted", "1000,1001"),
    ]
    assert (poll.updated, poll.deleted, poll.permissions_changed) == (0, 4, 0)
    docs = indexed(engine)
    assert not {"102", "102/att9", "301", "302"} & set(docs)
    assert docs["101"]["readers"] == ["group:eng"]  # restrictions wait for the id listing
    (pruned,) = run_sync(settings, writer)  # the second sync since the last listing lists ids
    # the restriction alone changed: readers rewritten, nothing re-embedded
    assert (pruned.updated, pruned.permissions_changed, pruned.deleted, pruned.chunks_written) == (0, 1, 0, 0)
    assert indexed(engine)["101"]["readers"] == ["user:ada@x.com"]
    assert stored_state(writer, "wiki")["syncs"] == 0

    del api.pages["201"]  # purged: in no listing of v2, gone from the id listing
    (poll,) = run_sync(settings, writer)
    assert poll.deleted == 0 and "201" in indexed(engine)
    (full,) = run_sync(settings, writer, full=True)  # --full always lists
    assert full.deleted == 1 and full.updated == 2


def test_data_center_trash_goes_at_the_next_poll_archived_pages_at_the_id_listing(make_engine, serve) -> None:
    api = serve(wiki("datacenter"))
    api.add_page(Page("302", "OPS", "Launch post", "<p>We launched.</p>", type="blogpost"))
    engine, settings = make_engine([source(api)], live_prune_every=2)
    writer = engine.index_writer()
    run_sync(settings, writer)
    api.pages["102"].status = "trashed"
    api.pages["302"].status = "trashed"
    api.pages["201"].status = "archived"
    before = len(api.requests)
    (poll,) = run_sync(settings, writer)
    trash = [
        (r.arg("spaceKey"), r.arg("type"), r.arg("status"))
        for r in api.requests[before:]
        if r.path == "/rest/api/content"
    ]
    assert trash == [
        ("ENG", "page", "trashed"),
        ("ENG", "blogpost", "trashed"),
        ("OPS", "page", "trashed"),
        ("OPS", "blogpost", "trashed"),
    ]
    assert poll.deleted == 2 and not {"102", "302"} & set(indexed(engine)) and "201" in indexed(engine)
    (pruned,) = run_sync(settings, writer)  # the id listing: archived content is in no v1 trash
    assert pruned.deleted == 1 and "201" not in indexed(engine)


def test_a_failed_trash_listing_fails_the_poll_and_keeps_the_checkpoint(make_engine, serve) -> None:
    api = serve(wiki())
    engine, settings = make_engine([source(api)], live_max_retries=0)
    writer = engine.index_writer()
    run_sync(settings, writer)
    since = stored_state(writer, "wiki")["cursor"]
    api.pages["102"].status = "trashed"
    api.edit("101", "<p>We deploy with Argo CD on Wednesdays.</p>")
    api.fail("/api/v2/pages", 500)
    (failed,) = run_sync(settings, writer)
    assert "HTTP 500" in failed.error and TOKEN not in failed.error
    assert "102" in indexed(engine) and stored_state(writer, "wiki")["cursor"] == since
    (poll,) = run_sync(settings, writer)
    assert poll.ok and (poll.updated, poll.deleted) == (1, 1) and "102" not in indexed(engine)


def test_an_expired_token_fails_the_sync_in_one_line_and_the_index_keeps_serving(
    make_engine, serve, monkeypatch, caplog
) -> None:
    api = serve(wiki())
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    api.token = "rotated-token-the-bot-does-not-have"
    caplog.set_level(logging.DEBUG)
    (report,) = run_sync(settings, engine.index_writer())
    assert not report.ok
    assert "\n" not in report.error
    assert "TEST_CONFLUENCE_TOKEN" in report.error and "HTTP 401" in report.error and "ENG" in report.error
    assert TOKEN not in report.error and TOKEN not in caplog.text
    assert set(indexed(engine)) == {"101", "102", "103", "201"}

    monkeypatch.delenv("TEST_CONFLUENCE_TOKEN")
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error == "wiki: environment variable TEST_CONFLUENCE_TOKEN is empty or not set"


def test_a_token_never_appears_in_log_lines(make_engine, serve, capsys) -> None:
    from rag_core.logs import setup_logging

    api = serve(wiki())
    api.fail("/content/search", 500)
    engine, settings = make_engine([source(api)], log_level="DEBUG", live_max_retries=1)
    setup_logging(settings)
    logging.getLogger("probe").warning("token %s in a message", TOKEN)
    run_sync(settings, engine.index_writer())
    err = capsys.readouterr().err
    assert "live_retry" in err and TOKEN not in err and "[redacted]" in err


def test_rate_limits_and_server_errors_are_retried(make_engine, serve) -> None:
    api = serve(wiki())
    api.fail("/content/search", 429, headers={"Retry-After": "0"})
    api.fail("/content/search", 503)
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and report.added == 4
    assert api.calls("/content/search") == 3  # refused twice, then answered


def test_a_server_that_keeps_failing_fails_the_sync_and_deletes_nothing(make_engine, serve) -> None:
    api = serve(wiki())
    engine, settings = make_engine([source(api)], live_max_retries=1)
    run_sync(settings, engine.index_writer())
    for _ in range(2):
        api.fail("/content/search", 502)
    (report,) = run_sync(settings, engine.index_writer(), full=True)
    assert "HTTP 502 after 1 retries" in report.error
    assert len(indexed(engine)) == 4


def test_a_page_with_a_broken_body_is_skipped_with_its_reason(make_engine, serve) -> None:
    api = serve(wiki())
    api.add_page(Page("104", "ENG", "Broken", "<p>unclosed <b>tag</p>"))
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.added == 4
    ((path, reason),) = report.skipped
    assert path == "ENG/Broken" and reason.startswith("page body is not valid storage format")


def test_unknown_space_and_missing_fields_are_one_line_each(make_engine, serve) -> None:
    from rag_core.errors import ConfigError

    api = serve(wiki())
    engine, settings = make_engine([source(api, spaces=["NOPE"])])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error == "wiki: space NOPE does not exist or the credential cannot see it"
    bad = settings.model_copy(update={"sources": [SourceConfig(name="w", kind="confluence_api")]})
    with pytest.raises(ConfigError) as caught:
        run_sync(bad, engine.index_writer())
    assert str(caught.value).splitlines() == [
        "RAG_SOURCES[0].url: source 'w' of kind 'confluence_api' needs url",
        "RAG_SOURCES[0].spaces: source 'w' of kind 'confluence_api' needs spaces",
        "RAG_SOURCES[0].token_env: source 'w' of kind 'confluence_api' needs token_env (the name of an environment "
        "variable holding its credential) or token_file (a secret file)",
    ]


_KILLED_CHILD = """
import sys
import connectors.confluence_api.connector as c
from connectors.sync import run_sync
from rag_core.engine import Engine
from rag_core.settings import SourceConfig
from tests.conftest import make_settings

c.PAGE_SIZE = 2
settings = make_settings(sys.argv[1], sources=[SourceConfig.model_validate_json(sys.argv[2])], live_batch_documents=2)
engine = Engine.from_settings(settings)
run_sync(settings, engine.index_writer())
"""


def test_a_sync_killed_mid_load_resumes_with_nothing_lost_and_nothing_twice(
    make_engine, serve, tmp_path
) -> None:
    api = serve(wiki())
    for i in range(5, 11):
        api.add_page(
            Page(f"1{i:02d}", "ENG", f"Page {i}", f"<p>Page number {i} of the handbook.</p>", when=api.tick())
        )
    config = source(api)
    engine, settings = make_engine([config], live_batch_documents=2)
    engine.close()  # the embedded store is opened by one process at a time
    gate = api.gate("/content/search", nth=3)  # the third page of two: two batches are committed by then
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(settings.data_dir), config.model_dump_json()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        reached = gate.reached.wait(240)
        assert reached, child.stderr.read().decode()[-2000:] if child.poll() is not None else "child hung"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        gate.release.set()

    engine, settings = make_engine([config], live_batch_documents=2)
    writer = engine.index_writer()
    committed = indexed(engine)
    assert len(committed) == 4  # two committed batches of two
    assert stored_state(writer, "wiki")["cursor"]["since"] is not None
    before = len(api.requests)
    (report,) = run_sync(settings, writer)
    assert report.ok, report.error
    docs = indexed(engine)  # asserts no chunk is there twice
    assert set(docs) == {p.id for p in api.pages.values()}
    assert report.added == len(api.pages) - 4 and report.updated == 0
    assert "lastmodified >=" in next(r for r in api.requests[before:] if r.path.endswith("/search")).arg(
        "cql"
    )


def test_ragbot_sync_runs_a_live_source_by_name_and_full_relists(
    make_engine, serve, monkeypatch, capsys
) -> None:
    import argparse
    import io

    from connectors.cli import sync_command
    from rag_core.engine import Engine

    api = serve(wiki("datacenter"))
    engine, settings = make_engine([source(api)])
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: engine))
    out = io.StringIO()
    assert sync_command(argparse.Namespace(source="wiki", full=False, verbose=False), settings, out) == 0
    assert out.getvalue().splitlines()[1].split()[:5] == ["wiki", "4", "0", "0", "0"]
    assert "wiki" in capsys.readouterr().err  # the progress bar, counting documents
    del api.pages["103"]
    engine, settings = make_engine([source(api)])  # the command closed the first one
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: engine))
    out = io.StringIO()
    assert sync_command(argparse.Namespace(source="wiki", full=True, verbose=False), settings, out) == 0
    assert out.getvalue().splitlines()[1].split()[:5] == ["wiki", "0", "3", "1", "0"]


def test_an_unreachable_site_is_one_line_and_deletes_nothing(make_engine, serve) -> None:
    import socket

    api = serve(wiki())
    engine, settings = make_engine([source(api)], live_max_retries=0)
    run_sync(settings, engine.index_writer())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    gone = settings.model_copy(update={"sources": [source(api, url=f"http://127.0.0.1:{port}/wiki")]})
    (report,) = run_sync(gone, engine.index_writer())
    assert report.error == f"wiki: http://127.0.0.1:{port}/wiki is unreachable (ConnectError)"
    assert len(indexed(engine)) == 4


def test_attachments_of_supported_types_are_documents_under_their_page(make_engine, serve) -> None:
    api = serve(wiki())
    api.pages["103"].attachments = [
        {"id": "att1", "title": "bands.md", "data": "# Bands\n\nL5 is 150k–180k €.".encode()},
        {"id": "att2", "title": "photo.png", "data": b"\x89PNG"},
    ]
    engine, settings = make_engine([source(api)], live_prune_every=1)
    (report,) = run_sync(settings, engine.index_writer())
    docs = indexed(engine)
    assert "103/att1" in docs and "180k €" in docs["103/att1"]["text"]
    assert (
        docs["103/att1"]["readers"] == docs["103"]["readers"]
    )  # an attachment is read by its page's readers
    assert [r for _, r in report.skipped] == ["attachment type .png is not indexed"]
    api.pages["103"].attachments.pop(0)
    (report,) = run_sync(settings, engine.index_writer())  # the listing no longer names it
    assert report.deleted == 1 and "103/att1" not in indexed(engine)


def test_a_space_whose_permissions_the_credential_cannot_see_is_said_in_one_line(
    make_engine, serve, caplog
) -> None:
    """Its unrestricted pages go to everyone who may use the source (docs/permissions.md): the operator is told,
    once a sync, which space and what bounds it."""
    api = serve(wiki())
    api.spaces["ENG"]["permissions_hidden"] = True
    engine, settings = make_engine([source(api)])
    with caplog.at_level(logging.WARNING):
        (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    docs = indexed(engine)
    assert docs["101"]["readers"] == ["*"] and docs["103"]["readers"] == ["group:legal", "user:hr@x.com"]
    lines = [r for r in caplog.records if getattr(r, "event", "") == "confluence_space_permissions_hidden"]
    assert len(lines) == 1 and lines[0].space == "ENG" and "visible_to" in lines[0].getMessage()


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_a_space_the_credential_can_no_longer_see_is_skipped_and_its_pages_leave_at_once(
    make_engine, serve, caplog, flavor
) -> None:
    """A space never there (a typo) or taken from the bot's account ("stop using it") is skipped with the reason
    and one warning line; the other spaces sync as usual, and the same sync's id listing drops the space's pages
    (page ids carry no space, so only the listing can tell them). Every space gone fails the sync, as before."""
    api = serve(wiki(flavor))
    engine, settings = make_engine([source(api, spaces=["ENG", "OPS", "NOPE"])])
    writer = engine.index_writer()
    (load,) = run_sync(settings, writer)
    assert load.ok, load.error
    assert {"101", "201"} <= set(indexed(engine))
    assert [where for where, _ in load.skipped] == ["space NOPE"]
    api.spaces["OPS"]["invisible"] = True
    api.edit("102", "<p>Paged through Opsgenie now.</p>")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        (poll,) = run_sync(settings, writer)
    assert poll.ok, poll.error
    docs = indexed(engine)
    assert "201" not in docs and "Opsgenie" in docs["102"]["text"]
    reasons = dict(poll.skipped)
    assert "cannot see it" in reasons["space OPS"] and "leave the index" in reasons["space OPS"]
    lines = [r for r in caplog.records if getattr(r, "event", "") == "confluence_space_not_visible"]
    assert sorted(r.space for r in lines) == ["NOPE", "OPS"]
    before = len(api.requests)
    (again,) = run_sync(settings, writer)  # OPS is gone from the checkpoint's spaces: no listing again
    assert again.ok, again.error
    listed = [r for r in api.requests[before:] if (r.arg("expand") or "").startswith("ancestors,")]
    assert listed == [] and [where for where, _ in again.skipped] == ["space OPS", "space NOPE"]
    api.spaces["OPS"]["invisible"] = False  # access given back: read whole at the next poll, old pages too
    (back,) = run_sync(settings, writer)
    assert back.ok, back.error
    assert "201" in indexed(engine) and back.added == 1
    api.spaces["ENG"]["invisible"] = True
    api.spaces["OPS"]["invisible"] = True
    (none,) = run_sync(settings, writer)
    assert none.error == "wiki: no space of ENG, OPS, NOPE exists or is visible to the credential"
    assert {"101", "201"} <= set(indexed(engine))  # nothing deleted by a sync that failed


def test_a_space_added_to_the_source_is_read_whole_at_the_next_poll(make_engine, serve) -> None:
    """Its pages were last edited long before the checkpoint: a poll's `lastmodified` window alone would never
    bring them (before, only `--full` did)."""
    api = serve(wiki())
    api.pages["201"].when = T0 - timedelta(
        days=30
    )  # long before ENG's newest page: outside any poll's window
    engine, settings = make_engine([source(api, spaces=["ENG"])])
    writer = engine.index_writer()
    run_sync(settings, writer)
    assert "201" not in indexed(engine)
    wider = settings.model_copy(update={"sources": [source(api, spaces=["ENG", "OPS"])]})
    (poll,) = run_sync(wider, writer)
    assert poll.ok, poll.error
    assert "201" in indexed(engine) and (poll.added, poll.updated) == (1, 0)
    before = len(api.requests)
    (again,) = run_sync(wider, writer)  # now in the checkpoint's spaces: only the window again
    whole = [r for r in api.requests[before:] if (r.arg("cql") or "").startswith('space in ("OPS")')]
    assert again.ok and again.added == 0 and whole == []
