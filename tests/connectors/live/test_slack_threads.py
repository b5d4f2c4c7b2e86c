"""Slack threads as a source against a fake Slack Web API, through the real sync and a real index."""

from __future__ import annotations

import logging

import pytest

from connectors.sync import run_sync
from rag_core.permissions import NOBODY, Audience
from rag_core.settings import SourceConfig
from tests.connectors.live.fake_slack_api import BOT_USER, Channel, FakeSlackApi
from tests.connectors.live.test_confluence_api import indexed

TOKEN = "xoxb-1234-secret-slack-token"


@pytest.fixture(autouse=True)
def _token(monkeypatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)


def workspace() -> tuple[FakeSlackApi, dict[str, str]]:
    api = FakeSlackApi(token=TOKEN)
    api.add_user("U1", "Ada", "ada@x.com")
    api.add_user("U2", "Linus", "Linus@x.com")
    api.channels["C1"] = Channel("C1", "help")
    api.channels["C2"] = Channel("C2", "leads", private=True, members=["U1", "U2", BOT_USER])
    ts = {}
    ts["vpn"] = api.post("C1", "U1", "How do I connect to the VPN?", reactions=["white_check_mark"]).ts
    api.post("C1", "U2", "Use WireGuard with the config from the wiki.", thread_ts=ts["vpn"])
    api.post("C1", BOT_USER, "I found 2 sources.", thread_ts=ts["vpn"])
    ts["lunch"] = api.post("C1", "U2", "Lunch at 12 — 🍜 anyone?").ts
    ts["bot"] = api.post("C1", BOT_USER, "Weekly digest: nothing new.").ts
    ts["comp"] = api.post("C2", "U1", "Comp review moves to March.").ts
    api.post("C2", "U2", "Noted, I will tell the team.", thread_ts=ts["comp"])
    return api, ts


def source(api: FakeSlackApi, **extra) -> SourceConfig:
    return SourceConfig(
        name="slack",
        kind="slack_threads",
        url=api.base,
        channels=["C1", "C2"],
        token_env="TEST_SLACK_TOKEN",
        **extra,
    )


def test_threads_are_documents_with_permalinks_authors_and_channel_access(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    docs = indexed(engine, "slack")
    assert set(docs) == {f"C1:{ts['vpn']}", f"C1:{ts['lunch']}", f"C2:{ts['comp']}"}  # the bot's own left out
    vpn = docs[f"C1:{ts['vpn']}"]
    assert (
        "**Linus** " in vpn["text"] and "WireGuard" in vpn["text"] and "I found 2 sources" not in vpn["text"]
    )
    assert vpn["url"] == f"https://acme.slack.com/archives/C1/p{ts['vpn'].replace('.', '')}"
    assert vpn["readers"] == ["*"]
    assert docs[f"C2:{ts['comp']}"]["readers"] == ["user:ada@x.com", "user:linus@x.com"]
    assert "🍜" in docs[f"C1:{ts['lunch']}"]["text"]


def test_a_poll_fetches_only_threads_with_new_replies_edits_or_deletions(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    api.post("C1", "U1", "Thanks, that worked!", thread_ts=ts["vpn"])
    api.edit("C1", ts["lunch"], "Lunch at 13 — 🍜 anyone?")
    api.delete("C2", ts["comp"])  # has a reply: a tombstone stays
    new = api.post("C1", "U2", "Where is the style guide?").ts
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert (report.added, report.updated, report.deleted) == (1, 2, 1), report
    replies = [r.arg("ts") for r in api.requests[before:] if r.path.endswith("conversations.replies")]
    assert replies == [ts["vpn"]]  # the edited parent and the new message have no replies to fetch
    docs = indexed(engine, "slack")
    assert "that worked" in docs[f"C1:{ts['vpn']}"]["text"] and "13" in docs[f"C1:{ts['lunch']}"]["text"]
    assert f"C2:{ts['comp']}" not in docs and f"C1:{new}" in docs


def test_reaction_and_reply_filters(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api, reaction="white_check_mark")])
    run_sync(settings, engine.index_writer())
    assert set(indexed(engine, "slack")) == {f"C1:{ts['vpn']}"}


def test_a_member_change_of_a_private_channel_is_applied_by_the_next_poll(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api, min_replies=1)])
    run_sync(settings, engine.index_writer())
    assert set(indexed(engine, "slack")) == {f"C1:{ts['vpn']}", f"C2:{ts['comp']}"}
    (report,) = run_sync(settings, engine.index_writer())
    assert (
        report.updated == 0 and api.calls("conversations.members") == 2
    )  # once a poll for the one private channel
    api.channels["C2"].members.remove("U2")
    (report,) = run_sync(settings, engine.index_writer())
    assert (report.updated, report.permissions_changed, report.chunks_written) == (0, 1, 0)
    assert indexed(engine, "slack")[f"C2:{ts['comp']}"]["readers"] == ["user:ada@x.com"]


def threads_for(engine, email: str) -> set[str]:
    """The Slack threads this person's retrieval finds for a question about the comp review."""
    found = engine.rank("comp review March", audience=Audience.of([f"user:{email}"]))
    return {c.chunk.doc_id for c in found if c.chunk.source == "slack"}


def test_a_member_who_leaves_loses_the_threads_at_the_next_poll_without_one_thread_read(
    make_engine, serve
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    comp = f"C2:{ts['comp']}"
    assert comp in threads_for(engine, "linus@x.com") and comp not in threads_for(engine, "nobody@x.com")
    linus = Audience.of(["user:linus@x.com"])
    engine.answer("When is the comp review?", audience=linus)
    assert engine.answer("When is the comp review?", audience=linus).cache_hit
    api.channels["C2"].members.remove("U2")
    before = len(api.requests)
    mark = engine.index_writer().embedded_count
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and (report.permissions_changed, report.updated, report.chunks_written) == (1, 0, 0)
    made = [r.path.rsplit("/", 1)[-1] for r in api.requests[before:]]
    assert "conversations.replies" not in made  # the readers were rewritten, the thread not read again
    assert "users.info" not in made  # names and emails came from the checkpoint
    assert engine.index_writer().embedded_count == mark
    assert comp not in threads_for(engine, "linus@x.com") and comp in threads_for(engine, "ada@x.com")
    assert indexed(engine, "slack")[comp]["readers"] == ["user:ada@x.com"]
    after = engine.answer("When is the comp review?", audience=linus)
    assert not after.cache_hit and comp not in {c.doc_id for c in after.citations}


def test_a_public_channel_made_private_narrows_its_threads_at_the_next_poll(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    run_sync(settings, engine.index_writer())  # a poll stores every channel's readers fingerprint
    vpn = f"C1:{ts['vpn']}"
    assert indexed(engine, "slack")[vpn]["readers"] == ["*"]
    api.channels["C1"].private, api.channels["C1"].members = True, ["U1", BOT_USER]
    before = len(api.requests)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and report.permissions_changed == 2 and report.updated == 0  # vpn and lunch
    assert "conversations.replies" not in {r.path.rsplit("/", 1)[-1] for r in api.requests[before:]}
    assert indexed(engine, "slack")[vpn]["readers"] == ["user:ada@x.com"]
    assert vpn not in threads_for(engine, "linus@x.com")


def test_a_failed_member_lookup_fails_the_poll_and_the_next_poll_still_narrows(
    make_engine, serve, caplog
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    comp = f"C2:{ts['comp']}"
    api.channels["C2"].members.remove("U2")
    api.fail("conversations.members", 200, {"ok": False, "error": "internal_error"})
    caplog.set_level(logging.DEBUG)
    (failed,) = run_sync(settings, engine.index_writer())
    assert failed.error == "slack: Slack conversations.members failed: internal_error"
    assert TOKEN not in caplog.text
    # the old readers stay until a poll can read the members; the change is not forgotten (checkpoint kept)
    assert indexed(engine, "slack")[comp]["readers"] == ["user:ada@x.com", "user:linus@x.com"]
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and report.permissions_changed == 1
    assert comp not in threads_for(engine, "linus@x.com")


def test_a_changed_email_reaches_the_readers_once_the_kept_users_are_looked_up_again(
    make_engine, serve
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)], live_prune_every=3)
    run_sync(settings, engine.index_writer())  # load: users looked up
    api.users["U2"]["email"] = "linus@new.example"
    (second,) = run_sync(settings, engine.index_writer())  # kept users: the old email still
    assert second.permissions_changed == 0 and api.calls("users.info") == 3  # U1, U2 and the bot, once
    (third,) = run_sync(settings, engine.index_writer())  # 3 polls old: looked up again
    assert third.permissions_changed == 1
    assert indexed(engine, "slack")[f"C2:{ts['comp']}"]["readers"] == [
        "user:ada@x.com",
        "user:linus@new.example",
    ]


def test_a_revoked_token_is_one_line_naming_the_variable_and_never_the_token(
    make_engine, serve, caplog
) -> None:
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api)])
    run_sync(settings, engine.index_writer())
    api.token = "xoxb-rotated"
    caplog.set_level(logging.DEBUG)
    (report,) = run_sync(settings, engine.index_writer())
    assert report.error.startswith(
        "slack: Slack refused auth.test with invalid_auth for the token in environment "
        "variable TEST_SLACK_TOKEN; it needs the scopes channels:history"
    )
    assert TOKEN not in report.error and TOKEN not in caplog.text
    assert len(indexed(engine, "slack")) == 3


def test_rate_limits_are_waited_out(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    api.fail("conversations.history", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
    api.fail("conversations.replies", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
    engine, settings = make_engine([source(api)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and report.added == 3


def test_a_channel_the_bot_is_not_in_is_skipped_with_how_to_fix_it_and_the_rest_is_synced(
    make_engine, serve, caplog
) -> None:
    api, ts = workspace()
    serve(api)
    api.channels["C2"].members.remove(BOT_USER)
    engine, settings = make_engine([source(api)])
    with caplog.at_level(logging.WARNING):
        (report,) = run_sync(settings, engine.index_writer())
    assert report.ok, report.error
    assert set(indexed(engine, "slack")) == {f"C1:{ts['vpn']}", f"C1:{ts['lunch']}"}
    (reason,) = [why for where, why in report.skipped if where == "#C2"]
    assert "the bot is not in channel C2" in reason and "invite the bot" in reason
    lines = [r for r in caplog.records if getattr(r, "event", "") == "slack_channel_not_joined"]
    assert len(lines) == 1 and lines[0].channel == "C2" and TOKEN not in lines[0].getMessage()


def test_a_private_channel_the_bot_is_removed_from_is_hidden_at_once_and_read_again_when_invited_back(
    make_engine, serve
) -> None:
    """Removing the bot from a channel means "stop using it": at the next poll its threads are read by nobody
    (only the operator), the other channels' changes are applied all the same, the id listing then drops them;
    invited back, the channel is read again whole."""
    api, ts = workspace()
    serve(api)
    engine, settings = make_engine([source(api, min_replies=1)], live_prune_every=2)
    writer = engine.index_writer()
    run_sync(settings, writer)
    comp = f"C2:{ts['comp']}"
    assert comp in threads_for(engine, "ada@x.com")
    api.channels["C2"].members.remove(BOT_USER)
    api.post("C1", "U2", "Restart the client too.", thread_ts=ts["vpn"])  # C1 keeps changing
    (poll,) = run_sync(settings, writer)
    assert poll.ok, poll.error
    assert indexed(engine, "slack")[comp]["readers"] == [NOBODY]
    assert comp not in threads_for(engine, "ada@x.com")  # not even to its members: the bot was told to leave
    assert "Restart the client" in indexed(engine, "slack")[f"C1:{ts['vpn']}"]["text"]
    (listing,) = run_sync(settings, writer)  # the second sync since the load lists ids
    assert listing.ok, listing.error
    assert comp not in indexed(engine, "slack")
    api.channels["C2"].members.append(BOT_USER)  # invited back
    (poll,) = run_sync(settings, writer)
    assert poll.ok, poll.error
    assert comp in threads_for(engine, "ada@x.com")


def test_a_long_thread_and_a_long_channel_are_read_across_cursor_pages(make_engine, serve) -> None:
    api, ts = workspace()
    serve(api)
    for i in range(450):  # three pages of replies
        api.post("C1", f"U{1 + i % 2}", f"Réponse numéro {i} ✅", thread_ts=ts["vpn"])
    for i in range(210):  # two pages of history
        api.post("C1", "U1", f"Question {i}?")
    engine, settings = make_engine([source(api, min_replies=1)])
    (report,) = run_sync(settings, engine.index_writer())
    assert report.ok and report.added == 2
    replies = [r for r in api.requests if r.path.endswith("conversations.replies")]
    assert [r.arg("cursor") for r in replies if r.arg("ts") == ts["vpn"]] == [None, "200", "400"]
    assert api.calls("conversations.history") == 3  # C1 twice, C2 once
    writer = engine.index_writer()
    gen = writer.committed_generation()
    from rag_core.store import Where

    texts = [
        p["text"]
        for p in writer.store.scroll(
            Where(source="slack", doc_id=f"C1:{ts['vpn']}", gen_lte=gen, dead_gt=gen), ["text"]
        )
    ]
    assert any("Réponse numéro 449 ✅" in t for t in texts)
