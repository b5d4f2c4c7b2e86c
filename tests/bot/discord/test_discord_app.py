"""The Discord bot end to end: real discord.py client on simcord, real engine, real Redis and feedback store."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import discord
import pytest
from simcord import Env
from simcord.builders import ChannelHandle
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.conversation import APOLOGY, RESYNC_REFUSAL, Conversation, make_resync
from bot.discord.app import NO_SOURCES, PERMISSIONS, invite_url, main, vote_value
from bot.discord.render import MESSAGE_LIMIT, source_line, split_message
from bot.settings import get_bot_settings
from rag_core.errors import UserError
from rag_core.feedback import FeedbackStore
from rag_core.feedback.models import AnswerRecord
from rag_core.settings import SourceConfig
from rag_core.types import Citation
from tests.bot.discord.conftest import ADMIN_ROLE, RecordingEngine
from tests.conftest import ROOT

# The engine answers in a worker thread; give a loaded CI machine room before simcord calls the bot stuck.
pytestmark = pytest.mark.simcord(settle_timeout=60)

QUESTION = "How much are team dinners reimbursed per person?"
GUILD_ID = 1_100_000_000_000_000_001


def _world(env: Env) -> tuple[Any, ChannelHandle, Any]:
    guild = env.create_guild()
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    return guild, general, alice


def _mention(env: Env) -> str:
    return env.bot.user.mention


def _bot_messages(env: Env, channel: ChannelHandle) -> list[discord.Message]:
    return [m for m in channel.history() if m.author.id == env.bot.user.id]


def _requests(env: Env) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in env.http_requests]


def _answer_for(feedback: FeedbackStore, channel: ChannelHandle, message: discord.Message) -> str | None:
    return feedback.answer_for_message(
        platform="discord", channel=str(channel.id), message_id=str(message.id)
    )


def _logged(feedback: FeedbackStore) -> list[AnswerRecord]:
    """Every logged answer with its citations, oldest first."""
    stmt = (
        select(AnswerRecord).options(selectinload(AnswerRecord.citations)).order_by(AnswerRecord.created_at)
    )
    with Session(feedback.engine) as session:
        return list(session.scalars(stmt))


# --- @mentions ------------------------------------------------------------------------------------------------


async def test_mention_gets_a_reply_edited_into_the_answer_with_a_sources_embed(
    simcord_env: Env, feedback: FeedbackStore, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    question = await alice.send(general, f"{_mention(env)} {QUESTION}")

    [reply] = _bot_messages(env, general)
    assert reply.reference is not None and reply.reference.message_id == question.id
    calls = _requests(env)
    typing = ("POST", f"/channels/{general.id}/typing")
    posted = ("POST", f"/channels/{general.id}/messages")
    assert calls.index(typing) < calls.index(posted)  # typing, then the reply (edited only while streaming)
    # Text quoted from documents never pings: no "@everyone", user or role mention is honoured.
    [post] = [r for r in env.http_requests if (r.method, r.path) == posted]
    assert post.json["allowed_mentions"] == {"parse": [], "replied_user": False}

    assert engine.calls[0]["question"] == QUESTION  # the bot's mention is not part of the question
    answer_id = _answer_for(feedback, general, reply)
    record = feedback.get_answer(answer_id)
    assert record is not None and record.outcome == "answered" and record.citations
    assert reply.content == record.answer_text
    [embed] = reply.embeds
    assert embed.title == "Sources"
    first = record.citations[0]
    assert embed.description.splitlines()[0] == source_line(
        Citation(n=1, title=first.title, url=first.url, snippet="", score=0, heading_path=first.heading_path)
    )
    assert embed.description.startswith("**1.** [")


async def test_mention_in_a_thread_answers_there_using_the_thread_as_history(
    simcord_env: Env, feedback: FeedbackStore, engine: RecordingEngine
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    starter = await alice.send(general, "We're planning a team dinner next week.")
    thread = ChannelHandle(
        env, guild, env.backend.create_thread(general.id, "dinner", alice.id, message_id=starter.id)
    )
    await alice.send(thread, "Eight of us are coming.")

    await alice.send(thread, f"{_mention(env)} {QUESTION}")

    assert _bot_messages(env, general) == []
    [reply] = _bot_messages(env, thread)
    call = engine.calls[-1]
    assert call["question"] == QUESTION
    assert [(t.role, t.text) for t in call["history"]] == [
        ("user", "We're planning a team dinner next week."),
        ("user", "Eight of us are coming."),
    ]
    # Answers in a thread are logged under the parent channel, whose access rules they follow...
    answer_id = _answer_for(feedback, general, reply)
    assert answer_id is not None

    # ...so a vote in the thread finds its answer.
    await alice.react(reply, "👍")
    assert [v.value for v in feedback.votes(answer_id)] == [1]

    # A follow-up sees the bot's own answer as an assistant turn.
    await alice.send(thread, f"{_mention(env)} and for contractors?")
    history = engine.calls[-1]["history"]
    assert [t.role for t in history] == ["user", "user", "user", "assistant"]
    assert history[-1].text == reply.content


async def test_private_sources_are_searched_only_from_their_channels_and_threads(
    simcord_env: Env, settings: Any, engine: RecordingEngine, feedback: FeedbackStore, tmp_path: Any
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    finance = guild.create_text_channel("finance")
    settings.sources = [
        SourceConfig(name="eng-wiki", kind="confluence", path=tmp_path),
        SourceConfig(name="people-drive", kind="drive", path=tmp_path),
        SourceConfig(
            name="finance-private",
            kind="drive",
            path=tmp_path,
            public=False,
            allowed_channels=[str(finance.id)],
        ),
    ]
    budget = "How many engineering hires does the 2027 headcount budget allow?"

    await alice.send(general, f"{_mention(env)} {budget}")
    await alice.send(finance, f"{_mention(env)} {budget}")
    thread = ChannelHandle(env, guild, env.backend.create_thread(finance.id, "hiring", alice.id))
    await alice.send(thread, f"{_mention(env)} {budget}")

    public = ["eng-wiki", "people-drive"]
    private = [*public, "finance-private"]
    assert [c["allowed_sources"] for c in engine.calls] == [public, private, private]
    in_general, in_finance, in_thread = _logged(feedback)
    assert "finance-private" not in {c.source for c in in_general.citations}
    assert in_finance.citations[0].source == in_thread.citations[0].source == "finance-private"
    [reply] = _bot_messages(env, finance)
    assert "Budget 2027" in reply.embeds[0].description


async def test_a_channel_mapping_overrides_the_defaults(
    simcord_env: Env, settings: Any, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    settings.channel_sources = {str(general.id): ["eng-wiki"]}

    await alice.send(general, f"{_mention(env)} {QUESTION}")
    result = await alice.slash(general, "ask", question=QUESTION)

    assert [c["allowed_sources"] for c in engine.calls] == [["eng-wiki"], ["eng-wiki"]]
    assert result.response is not None


async def test_direct_messages_are_answered_without_a_mention(
    simcord_env: Env, feedback: FeedbackStore, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, _, alice = _world(env)

    await alice.send_dm(QUESTION)

    dm = alice.user.dm_channel
    replies = [m for m in dm.history() if m.author.id == env.bot.user.id]
    assert len(replies) == 1 and replies[0].embeds
    assert engine.calls[0]["question"] == QUESTION
    assert _answer_for(feedback, dm, replies[0])


async def test_bots_and_messages_without_a_mention_are_ignored(
    simcord_env: Env, engine: RecordingEngine
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    robot = guild.add_member(env.create_user("robot", bot=True))

    await robot.send(general, f"{_mention(env)} {QUESTION}")
    await alice.send(general, QUESTION)

    assert _bot_messages(env, general) == []
    assert engine.calls == []


async def test_a_replayed_gateway_event_is_answered_once(simcord_env: Env, engine: RecordingEngine) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    question = await alice.send(general, f"{_mention(env)} {QUESTION}")

    # A resumed gateway session delivers the same MESSAGE_CREATE again.
    env.backend.announce_message_create(env.backend.get_message(general.id, question.id))
    await env.settle()

    assert len(_bot_messages(env, general)) == 1
    assert len(engine.calls) == 1


@pytest.mark.discord_settings(rate_limit_per_minute=1)
async def test_rate_limited_questions_get_a_short_refusal(simcord_env: Env, engine: RecordingEngine) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    await alice.send(general, f"{_mention(env)} {QUESTION}")
    await alice.send(general, f"{_mention(env)} and for contractors?")

    first, second = _bot_messages(env, general)
    assert first.embeds
    assert second.content.startswith("You've asked more than 1 questions in the last minute")
    assert len(engine.calls) == 1


@pytest.mark.discord_settings(daily_spend_cap_usd=0.5)
async def test_the_daily_spend_cap_refuses_politely(
    simcord_env: Env, conversation: Conversation, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    conversation._add_spend(0.75)  # today's LLM spend so far

    result = await alice.slash(general, "ask", question=QUESTION)
    await alice.send(general, f"{_mention(env)} {QUESTION}")

    assert result.response.content.startswith("Today's question budget is used up")
    assert _bot_messages(env, general)[0].content.startswith("Today's question budget is used up")
    assert engine.calls == []


class _FailingEngine(RecordingEngine):
    """The real engine whose answer step breaks (a bug, a dead store), while the sources lookup still works."""

    def answer(self, question: str, **kwargs: Any) -> Any:
        raise RuntimeError("generation exploded")


async def test_an_engine_failure_apologises_with_the_sources_found(
    simcord_env: Env, conversation: Conversation, feedback: FeedbackStore, small_engine: Any
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    conversation.engine = _FailingEngine(small_engine)

    await alice.send(general, f"{_mention(env)} {QUESTION}")
    result = await alice.slash(general, "ask", question=QUESTION)

    [reply] = _bot_messages(env, general)
    assert reply.content == APOLOGY
    assert reply.embeds and reply.embeds[0].description.startswith("**1.** [")
    assert result.response.content == APOLOGY and result.response.embeds
    assert [r.outcome for r in _logged(feedback)] == ["error", "error"]


class _LongAnswerEngine(RecordingEngine):
    """The real engine's answer with its text replaced by one far longer than a Discord message."""

    TEXT = "\n\n".join(
        [f"Step {i}. " + "Fill in the form and wait for the approval e-mail. " * 12 for i in range(1, 8)]
        + ["```sh\n" + "\n".join(f"ragbot request --day {d}" for d in range(1, 40)) + "\n```", "Done [1]."]
    )

    def answer(self, question: str, **kwargs: Any) -> Any:
        answer = self.engine.answer(question, **{k: v for k, v in kwargs.items() if k != "on_token"})
        if kwargs.get("on_token"):
            kwargs["on_token"](self.TEXT[:2500])  # a streamed draft already longer than one message
        return dataclasses.replace(answer, text=self.TEXT)


async def test_a_long_answer_is_split_into_messages_with_the_sources_on_the_last(
    simcord_env: Env, conversation: Conversation, feedback: FeedbackStore, small_engine: Any
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    conversation.engine = _LongAnswerEngine(small_engine)
    assert len(_LongAnswerEngine.TEXT) > 2 * MESSAGE_LIMIT

    question = await alice.send(general, f"{_mention(env)} {QUESTION}")

    messages = _bot_messages(env, general)
    assert [m.content for m in messages] == split_message(_LongAnswerEngine.TEXT)
    assert len(messages) >= 3 and all(len(m.content) <= MESSAGE_LIMIT for m in messages)
    assert messages[0].reference is not None and messages[0].reference.message_id == question.id
    assert [bool(m.embeds) for m in messages] == [False] * (len(messages) - 1) + [True]
    # A vote on any part of the answer counts for it.
    answer_id = _answer_for(feedback, general, messages[0])
    assert answer_id is not None and _answer_for(feedback, general, messages[-1]) == answer_id
    await alice.react(messages[-1], "👎")
    assert [v.value for v in feedback.votes(answer_id)] == [-1]

    # /ask continues a long answer in ephemeral follow-ups, the sources on the last.
    result = await alice.slash(general, "ask", question=QUESTION)
    parts = [result.response, *result.followups]
    assert [p.content for p in parts] == split_message(_LongAnswerEngine.TEXT)
    assert all(p.ephemeral for p in parts)
    assert [bool(p.embeds) for p in parts] == [False] * (len(parts) - 1) + [True]


class _PausesAfterTheFirstToken:
    """The engine, holding its stream after the first token until `posted` is set (by the gateway event of the
    bot's first message)."""

    def __init__(self, real: Any, posted: threading.Event) -> None:
        self.real = real
        self.posted = posted

    def answer(self, question: str, *, on_token: Any = None, **kwargs: Any) -> Any:
        def token(text: str) -> None:
            on_token(text)
            if not self.posted.is_set() and not self.posted.wait(60):
                raise TimeoutError("the bot never posted the first draft")

        return self.real.answer(question, on_token=token if on_token else None, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_streamed_llm_answer_is_posted_then_edited_into_the_final_answer(
    simcord_env: Env,
    conversation: Conversation,
    llm_engine: RecordingEngine,
    openai_server: Any,
    feedback: Any,
) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    # The stream waits, after its first token, until the bot has posted that draft: on a loaded machine the whole
    # reply could otherwise arrive before the first post, leaving nothing to edit (the test was flaky).
    first_post = threading.Event()
    env.backend.subscribers.append(
        lambda event, payload: (
            first_post.set()
            if event == "MESSAGE_CREATE" and str(payload["author"]["id"]) == str(env.bot.user.id)
            else None
        )
    )
    conversation.engine = _PausesAfterTheFirstToken(llm_engine, first_post)
    openai_server.reset(reply="Team dinners are reimbursed up to $60 per person, tips included [1].")

    await alice.send(general, f"{_mention(env)} {QUESTION}")

    [reply] = _bot_messages(env, general)
    [record] = _logged(feedback)
    assert not record.extractive and record.model == "test-model"
    assert (
        reply.content
        == record.answer_text
        == "Team dinners are reimbursed up to $60 per person, tips included [1]."
    )
    writes = [
        r.json["content"]
        for r in env.http_requests
        if r.method in ("POST", "PATCH") and r.path.startswith(f"/channels/{general.id}/messages") and r.json
        if "content" in r.json
    ]
    assert len(writes) >= 2  # posted with the first tokens, then edited (at the latest, for the final answer)
    assert all(record.answer_text.startswith(draft) for draft in writes)
    assert writes[-1] == record.answer_text and reply.embeds


# --- reactions ------------------------------------------------------------------------------------------------


async def test_thumbs_on_an_answer_are_votes_one_per_person_and_removal_retracts(
    simcord_env: Env, feedback: FeedbackStore
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    bob = guild.add_member(env.create_user("bob"))
    question = await alice.send(general, f"{_mention(env)} {QUESTION}")
    [reply] = _bot_messages(env, general)
    answer_id = _answer_for(feedback, general, reply)

    def votes() -> list[int]:
        return sorted(v.value for v in feedback.votes(answer_id))

    await alice.react(reply, "👍")
    assert votes() == [1]
    await alice.react(reply, "👎")  # a new vote replaces her earlier one
    assert votes() == [-1]
    await alice.unreact(reply, "👍")  # removing the old 👍 leaves her 👎
    assert votes() == [-1]
    await bob.react(reply, "👍🏽")  # any skin tone
    assert votes() == [-1, 1]
    await alice.unreact(reply, "👎")
    assert votes() == [1]

    await alice.react(reply, "🎉")  # not a vote
    await bob.react(question, "👍")  # not an answer
    assert votes() == [1]


def test_vote_values() -> None:
    assert [vote_value(e) for e in ("👍", "👎", "👍🏿", "👎🏻", "🎉", "thumbsup")] == [
        1,
        -1,
        1,
        -1,
        None,
        None,
    ]


# --- app commands ----------------------------------------------------------------------------------------------


async def test_ask_command_answers_only_the_asker(
    simcord_env: Env, feedback: FeedbackStore, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    result = await alice.slash(general, "ask", question=QUESTION)

    assert result.acknowledged and result.ephemeral
    response = result.response
    assert response is not None and response.ephemeral
    [record] = _logged(feedback)
    assert response.content == record.answer_text and record.platform == "discord"
    assert response.embeds[0].description.startswith("**1.** [")
    assert engine.calls[0]["question"] == QUESTION
    assert _bot_messages(env, general) == [m for m in general.history() if not m.flags.ephemeral]


async def test_sources_command_lists_numbered_links_without_answering(
    simcord_env: Env, feedback: FeedbackStore, engine: RecordingEngine
) -> None:
    env = simcord_env
    _, general, alice = _world(env)

    result = await alice.slash(general, "sources", question=QUESTION)

    assert result.ephemeral
    [embed] = result.response.embeds
    assert embed.title == f"Sources: {QUESTION}"
    assert embed.description.startswith("**1.** [")
    assert engine.calls == [] and _logged(feedback) == []  # no answer was generated

    empty = await alice.slash(general, "sources", question="   ")
    assert empty.response.content.startswith("Please include a question")


async def test_sources_command_follows_the_channel_rules(simcord_env: Env, settings: Any) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    settings.channel_sources = {str(general.id): []}  # this channel may search nothing

    result = await alice.slash(general, "sources", question=QUESTION)

    assert result.response.content == NO_SOURCES


async def test_resync_is_for_admins_by_role_or_user_id(
    simcord_env: Env, settings: Any, resync_calls: list
) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    librarians = guild.create_role(ADMIN_ROLE)
    carol = guild.add_member(env.create_user("carol"), roles=[librarians])
    dave = guild.add_member(env.create_user("dave"))
    settings.admin_user_ids = [str(dave.id)]

    refused = await alice.slash(general, "resync")
    by_role = await carol.slash(general, "resync", source="handbook", full=True)
    by_id = await dave.slash(general, "resync")

    assert refused.ephemeral and refused.response.content == RESYNC_REFUSAL
    assert by_role.ephemeral and by_role.response.content == "**handbook**: 2 added, 0 updated, 0 deleted"
    assert by_id.response.content == "**all**: 2 added, 0 updated, 0 deleted"
    assert resync_calls == [("handbook", True), (None, False)]
    progress = [
        r.json.get("content")
        for r in env.http_requests
        if r.method == "PATCH" and r.path.endswith("/messages/@original") and r.json
    ]
    assert "syncing handbook…" in progress


@pytest.mark.discord_settings(discord_guild_id=GUILD_ID)
async def test_commands_sync_to_the_configured_guild(simcord_env: Env, engine: RecordingEngine) -> None:
    env = simcord_env
    app_id = env.backend.application_id
    puts = [path for method, path in _requests(env) if method == "PUT"]
    assert puts == [f"/applications/{app_id}/guilds/{GUILD_ID}/commands"]

    guild = env.create_guild(id=GUILD_ID)
    general = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    assert {"ask", "sources", "resync"} <= set(alice.available_commands(general))
    result = await alice.slash(general, "ask", question=QUESTION)
    assert result.response.embeds


# --- process --------------------------------------------------------------------------------------------------


def test_main_without_a_token_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("RAG_DISCORD_TOKEN", raising=False)
    get_bot_settings.cache_clear()
    try:
        with pytest.raises(UserError, match="DISCORD_TOKEN is not set"):
            main()
    finally:
        get_bot_settings.cache_clear()


def test_invite_url_asks_for_exactly_the_permissions_the_bot_needs() -> None:
    assert PERMISSIONS.value == 309237730368
    url = invite_url(42)
    assert "client_id=42" in url and "permissions=309237730368" in url
    assert "scope=bot+applications.commands" in url


async def test_mentioning_the_bots_own_role_asks_it_too(simcord_env: Env, engine: RecordingEngine) -> None:
    env = simcord_env
    guild, general, alice = _world(env)
    cached = env.bot.get_guild(guild.id)
    role = next(r for r in cached.roles if r.managed)
    # Discord tags the role it creates for a bot with the bot's id; simcord's managed role carries no tags.
    role.tags = discord.RoleTags({"bot_id": str(env.bot.user.id)})

    await alice.send(general, f"{role.mention} {QUESTION}")

    assert len(_bot_messages(env, general)) == 1
    assert engine.calls[0]["question"] == QUESTION


async def test_replying_to_an_answer_uses_it_as_context(simcord_env: Env, engine: RecordingEngine) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    await alice.send(general, f"{_mention(env)} {QUESTION}")
    [answer] = _bot_messages(env, general)

    await alice.send(general, f"{_mention(env)} who approves it?", reply_to=answer)

    history = engine.calls[-1]["history"]
    assert [(t.role, t.text) for t in history] == [("assistant", answer.content)]


async def test_answers_offer_one_click_votes(simcord_env: Env, feedback: FeedbackStore) -> None:
    env = simcord_env
    _, general, alice = _world(env)
    await alice.send(general, f"{_mention(env)} {QUESTION}")
    [reply] = _bot_messages(env, general)
    answer_id = _answer_for(feedback, general, reply)

    assert [(str(r.emoji), r.count) for r in reply.reactions] == [("👍", 1), ("👎", 1)]
    own = [path for method, path in _requests(env) if method == "PUT" and path.endswith("/@me")]
    assert len(own) == 2 and all(f"/messages/{reply.id}/reactions/" in path for path in own)
    assert feedback.votes(answer_id) == []  # the bot's own reactions are not votes
    await alice.react(reply, "👍")
    assert [v.value for v in feedback.votes(answer_id)] == [1]


async def test_resync_syncs_the_sample_exports_for_real_and_the_bot_then_answers_from_them(
    simcord_env: Env, settings: Any, conversation: Conversation, small_engine: Any, kv: Any, tmp_path: Any
) -> None:
    from connectors import sample_sources
    from tests.conftest import empty_index_engine

    env = simcord_env
    guild, general, _ = _world(env)
    librarians = guild.create_role(ADMIN_ROLE)
    carol = guild.add_member(env.create_user("carol"), roles=[librarians])
    settings.sources = sample_sources(ROOT)
    engine = empty_index_engine(small_engine, tmp_path / "index")
    conversation.engine = engine
    conversation._resync = make_resync(engine, settings, kv)
    try:
        synced = await carol.slash(general, "resync", source="eng-wiki")
        answered = await carol.slash(general, "sources", question="How fast must I acknowledge a page?")
    finally:
        engine.close()

    assert synced.response.content.startswith("eng-wiki: ")
    assert (
        " added, 0 updated, 0 deleted" in synced.response.content and "failed" not in synced.response.content
    )
    assert engine.index_version == 1
    # The samples set no base URL, so their pages have no web link: the titles are listed unlinked.
    assert answered.response.embeds[0].description.startswith("**1.** On-call runbook")
