"""The one conversation layer both chat adapters use: a question in, answer events out.

Slack and Discord modules translate platform events into a `Question` and render the events an `AnswerSink`
receives; access, rate limits, the spend cap, A/B arms, streaming, feedback and failure handling live here.
Nothing in this module knows about slack_sdk or discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.identity import Identity, asker_audience, channel_audience, channel_members
from bot.inflight import busy_message, slots_for
from bot.settings import BotSettings
from rag_core.cancellation import AnswerCancelled
from rag_core.errors import RagbotError, StoreUnavailable, UserError
from rag_core.feedback import metrics
from rag_core.feedback.experiments import assign_arm
from rag_core.kv import KeyValue
from rag_core.permissions import Audience
from rag_core.settings import Settings
from rag_core.types import Answer, Citation, Turn, Vote

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.feedback import FeedbackStore

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while answering. Here are the sources I found:"
APOLOGY_NO_SOURCES = "Sorry, something went wrong while answering, and I could not look up sources either."
INDEX_UNREACHABLE = "Sorry, the search index is unreachable right now. Please ask again in a few minutes."
EMPTY_QUESTION = "Please include a question, e.g. “how do I request time off?”."
RESYNC_USAGE = "Usage: /resync [source] [--full]"
RESYNC_REFUSAL = "Sorry, only ragbot admins can run /resync. Ask an admin if the index looks out of date."

# A resync callable: (source or None for all, full re-read, progress line callback) -> report text.
# It runs in a worker thread; the adapter's `main` binds it to connectors.sync.
ResyncFn = Callable[[str | None, bool, Callable[[str], None]], str]


def make_resync(engine: Engine, settings: Settings, kv: KeyValue) -> ResyncFn:
    """The `/resync` work for either adapter: connectors.sync into the engine's index, taking the same
    per-source lock as the scheduler, rendered as the report text."""

    def resync(source: str | None, full: bool, progress: Callable[[str], None]) -> str:
        from connectors.sync import (  # bot/ may run without the connectors' deps loaded
            render_report,
            run_sync,
        )

        reports = run_sync(
            settings, engine.index_writer(), source=source, full=full, progress=progress, kv=kv
        )
        return render_report(reports)

    return resync


class Undelivered(Exception):
    """Raised by a sink when no route (post, plain text, ephemeral, direct message) reached the asker."""


@dataclass
class Question:
    """One question from a chat platform, with what the layer needs to answer it safely."""

    platform: str  # "slack" | "discord"
    text: str
    user_id: str
    channel_id: str
    is_dm: bool = False
    thread_id: str | None = None
    history: list[Turn] = field(default_factory=list)  # earlier thread messages, oldest first
    roles: list[str] = field(default_factory=list)  # platform role names (Discord admin role check)
    role_ids: list[str] = field(default_factory=list)  # platform role ids (Discord principals by role)
    asker_only: bool = False  # the answer is shown to the asker alone (ephemeral, private first, API)
    message_id: str | None = None  # the asker's message: deleting it cancels the answer (`cancel_question`)

    @property
    def private(self) -> bool:
        """Only the asker reads the answer (a DM counts): it may use the asker's principals."""
        return self.asker_only or self.is_dm


class AnswerSink(Protocol):
    """Where the answer events go; each adapter implements one per question."""

    async def started(self) -> None:
        """The question was accepted: show 👀 / typing and a "Searching…" placeholder."""

    async def update(self, partial_text: str) -> None:
        """The answer so far, while it streams; calls are already throttled by the layer."""

    async def finished(self, answer: Answer) -> str | None:
        """Render the final answer; return the platform message id votes will refer to (None if not votable)."""

    async def refused(self, message: str) -> None:
        """A short, clear reply instead of an answer (rate limit, spend cap, empty question)."""

    async def failed(self, message: str, citations: list[Citation]) -> None:
        """An apology with whatever sources were found."""


def parse_resync_args(text: str, known_sources: Sequence[str] = ()) -> tuple[str | None, bool]:
    """`[source] [--full]` → (source or None for all, full). Raises UserError carrying the usage line."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise UserError(f"Could not read the arguments ({exc}). {RESYNC_USAGE}") from exc
    full = False
    names: list[str] = []
    for word in words:
        if word == "--full":
            full = True
        elif word.startswith("-"):
            raise UserError(f"Unknown option {word!r}. {RESYNC_USAGE}")
        else:
            names.append(word)
    if len(names) > 1:
        raise UserError(f"Give at most one source, got {len(names)}: {', '.join(names)}. {RESYNC_USAGE}")
    source = names[0] if names else None
    if source is not None and known_sources and source not in known_sources:
        raise UserError(f"Unknown source {source!r}; configured: {', '.join(known_sources)}. {RESYNC_USAGE}")
    return source, full


class _Throttle:
    """Collects streamed tokens from the engine's thread and forwards the text to the sink at most once per
    interval, so chat platforms' edit rate limits are respected."""

    def __init__(self, sink: AnswerSink, interval_s: float, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._interval = interval_s
        self._loop = loop
        self._parts: list[str] = []
        self._mutex = threading.Lock()
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._sent = ""
        self._task = loop.create_task(self._run())

    def on_token(self, token: str) -> None:
        """Called from any thread (the engine's pool) or from the loop itself (the LLM stream)."""
        with self._mutex:
            self._parts.append(token)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            # Wait an interval before each edit: edits stay `interval` apart, and an answer that is complete
            # within it (no LLM, a cache hit) goes straight to the final render with no draft edit before it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._interval)
            self._changed.clear()
            if self._closed.is_set():
                return
            with self._mutex:
                text = "".join(self._parts)
            if text.strip() and text != self._sent:
                self._sent = text
                try:
                    await self._sink.update(text)
                except Exception:  # a failed edit must not lose the answer; the final render follows
                    log.warning(
                        "streaming update failed", exc_info=True, extra={"event": "stream_update_failed"}
                    )

    def cancel(self) -> None:
        """Stop streaming at once, dropping a pending edit (the answer was cancelled)."""
        self._closed.set()
        self._task.cancel()

    async def close(self) -> None:
        """Stop streaming (the final rendering follows); waits for an edit already under way."""
        self._closed.set()
        self._changed.set()
        await self._task


@dataclass
class _Run:
    """One question being answered: what the layer decided for it."""

    q: Question
    text: str
    allowed: list[str] | None
    arm: str | None
    overrides: dict[str, Any]
    audience: Audience = field(default_factory=Audience.public)  # who will read the answer
    started: float = field(default_factory=time.perf_counter)


def _utc_day() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class Conversation:
    """Turns questions into answer events, enforcing access, limits and budgets, and records feedback."""

    def __init__(
        self,
        engine: Engine,
        settings: BotSettings,
        kv: KeyValue,
        feedback: FeedbackStore | None = None,
        resync: ResyncFn | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.kv = kv
        self.feedback = feedback
        self._resync = resync
        # platform -> how its askers are named, for private answers (each adapter registers its own)
        self.identities: dict[str, Identity] = {}
        self._slots = slots_for(
            engine, settings.answers_in_flight, settings.answers_queued
        )  # shared by every platform of the process
        self._asking: dict[tuple[str, str, str], asyncio.Task[Any]] = {}  # asker's message -> its answer task

    # --- access --------------------------------------------------------------------------------------------
    def allowed_sources(self, channel_id: str, is_dm: bool) -> list[str] | None:
        """Sources a question from this channel may search; None means every source."""
        s = self.settings
        if channel_id in s.channel_sources:
            return list(s.channel_sources[channel_id])
        if is_dm and s.dm_sources is not None:
            return list(s.dm_sources)
        if not s.sources:
            return None  # nothing configured (e.g. a single ad-hoc index): everything is searchable
        if is_dm:
            return s.public_sources()
        return [src.name for src in s.sources if src.public or channel_id in src.allowed_channels]

    async def audience(self, q: Question) -> Audience:
        """Who will read the answer to `q`: the asker alone (their principals), or everyone in the channel."""
        if q.private:  # the asker is in the conversation they asked in, whoever else they turn out to be
            asker = await asker_audience(self.identities.get(q.platform), q, self.settings)
            return Audience.of(asker.principals | {channel_members(q.platform, q.channel_id)})
        return channel_audience(self.settings, q.channel_id, q.platform)

    def is_admin(self, user_id: str, roles: Sequence[str] = ()) -> bool:
        if user_id in self.settings.admin_user_ids:
            return True
        role = self.settings.discord_admin_role
        return bool(role) and role in roles

    def first_delivery(self, platform: str, event_id: str, ttl_s: float = 3600) -> bool:
        """True the first time an event id is seen (retried and duplicate deliveries return False)."""
        return self.kv.set_if_absent(f"dedupe:{platform}:{event_id}", "1", ttl_s)

    # --- limits --------------------------------------------------------------------------------------------
    def _over_limit(self, q: Question) -> str | None:
        """A refusal message when this user or the whole team is over its limit, else None."""
        per_minute = self.settings.rate_limit_per_minute
        if per_minute > 0:
            count = self.kv.incr(f"rate:{q.platform}:{q.user_id}", 1, ttl_s=60)
            if count > per_minute:
                return (
                    f"You've asked more than {per_minute} questions in the last minute. "
                    "Please wait a minute and ask again."
                )
        cap = self.settings.daily_spend_cap_usd
        if cap > 0:
            spent = float(self.kv.get(f"spend:{_utc_day()}") or 0)
            if spent >= cap:
                return "Today's question budget is used up. I'll answer again tomorrow (UTC); sorry for the wait."
        return None

    def _add_spend(self, cost_usd: float) -> None:
        if cost_usd > 0:
            self.kv.incr(f"spend:{_utc_day()}", cost_usd, ttl_s=2 * 24 * 3600)

    # --- answering -----------------------------------------------------------------------------------------
    async def ask(self, q: Question, sink: AnswerSink) -> Answer | None:
        """Answer one question through the sink; returns the answer, or None when refused or failed."""
        text = q.text.strip()
        arm, overrides = assign_arm(q.user_id, self.settings)
        run = _Run(q, text, self.allowed_sources(q.channel_id, q.is_dm), arm, overrides)
        if not text:
            await self._refuse(run, sink, EMPTY_QUESTION)
            return None
        limited = self.settings.rate_limit_per_minute > 0 or self.settings.daily_spend_cap_usd > 0
        refusal = await asyncio.to_thread(self._over_limit, q) if limited else None
        if refusal:
            await self._refuse(run, sink, refusal, record_as="rate_limited")
            return None
        if not await self._slots.enter(q.platform):
            log.warning(
                "answers in flight at the limit; question refused",
                extra={"event": "answers_busy", "platform": q.platform, "in_flight": self._slots.in_flight},
            )
            await self._refuse(run, sink, busy_message(self._slots), record_as="busy")
            return None
        key = (q.platform, q.channel_id, q.message_id) if q.message_id else None
        task = asyncio.current_task()
        if key and task is not None:
            self._asking[key] = task
        try:
            return await self._ask_in_slot(run, sink)
        finally:
            self._slots.leave(q.platform)
            if key:
                self._asking.pop(key, None)

    def cancel_question(self, platform: str, channel: str, message_id: str) -> bool:
        """Cancel the answer to this message (its asker deleted it); False when none is being answered."""
        task = self._asking.get((platform, channel, message_id))
        if task is None or task.done():
            return False
        log.info(
            "answer cancelled: question deleted", extra={"event": "question_deleted", "platform": platform}
        )
        task.cancel()
        return True

    async def _engine_answer(self, text: str, **kwargs: Any) -> Answer:
        """The engine's answer: awaited on the loop when the engine has `answer_async`, else in a thread."""
        # Looked up on the class: a double delegating attributes to a real engine answers with its own `answer`
        if getattr(type(self.engine), "answer_async", None) is not None:
            answer: Answer = await self.engine.answer_async(text, **kwargs)
            return answer
        return await asyncio.to_thread(self.engine.answer, text, **kwargs)

    async def _ask_in_slot(self, run: _Run, sink: AnswerSink) -> Answer | None:
        q, text, overrides = run.q, run.text, run.overrides
        try:
            await sink.started()
        except Exception:  # 👀 / typing / "Searching…" are progress only; the reply has its own fallbacks
            log.warning(
                "showing progress failed",
                exc_info=True,
                extra={"event": "progress_failed", "platform": q.platform},
            )
        run.audience = await self.audience(q)  # after the 👀: naming the asker may take a Slack call
        throttle = _Throttle(sink, self.settings.stream_edit_interval_s, asyncio.get_running_loop())
        try:
            answer = await self._engine_answer(
                text,
                allowed_sources=run.allowed,
                history=list(q.history),
                on_token=throttle.on_token,
                overrides=overrides or None,
                audience=run.audience,
            )
        except asyncio.CancelledError as exc:
            # asker gone, question deleted, shutdown: stop streaming and say so in the query log
            throttle.cancel()
            spent = exc.answer if isinstance(exc, AnswerCancelled) else None
            cancelled = spent or Answer(question=text, text="", citations=[], error="cancelled")
            self._record_now(run, cancelled, "cancelled")
            raise
        except StoreUnavailable as exc:  # say so in one line: there are no sources to show either
            await throttle.close()
            log.warning("search index unreachable", extra={"event": "store_unavailable", "error": str(exc)})
            await sink.refused(INDEX_UNREACHABLE)
            failed = Answer(question=text, text=INDEX_UNREACHABLE, citations=[], error=str(exc))
            await self._record(run, failed, "error", None)
            return None
        except RagbotError as exc:
            await throttle.close()
            await self._refuse(run, sink, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - _fail logs it with its traceback and tells the asker
            await throttle.close()
            await self._fail(run, exc, sink)
            return None
        await throttle.close()

        if answer.cost_usd > 0:
            await asyncio.to_thread(self._add_spend, answer.cost_usd)
        try:
            message_id = await sink.finished(answer)
        except Undelivered as exc:
            await self._undelivered(run, answer, exc)
            return None
        except Exception as exc:
            # Rendering failed (e.g. the platform rejected the blocks): still reply, never silence.
            log.exception(
                "rendering the answer failed", extra={"event": "render_failed", "platform": q.platform}
            )
            await self._fail(run, exc, sink, citations=answer.citations)
            return None
        await self._record(run, answer, "abstained" if answer.abstained else "answered", message_id)
        return answer

    async def _fail(
        self, run: _Run, exc: BaseException, sink: AnswerSink, citations: list[Citation] | None = None
    ) -> None:
        log.error(
            "answering failed",
            exc_info=exc,
            extra={"event": "answer_failed", "platform": run.q.platform, "channel": run.q.channel_id},
        )
        if citations is None:
            try:
                citations = await asyncio.to_thread(
                    self.engine.sources, run.text, allowed_sources=run.allowed, audience=run.audience
                )
            except Exception:
                log.warning("sources lookup after a failure failed too", exc_info=True)
                citations = []
        failed = Answer(question=run.text, text="", citations=citations, error=f"{type(exc).__name__}: {exc}")
        try:
            await sink.failed(APOLOGY if citations else APOLOGY_NO_SOURCES, citations)
        except Exception as delivery_exc:  # noqa: BLE001 - _undelivered logs it with exc_info
            await self._undelivered(run, failed, delivery_exc)
            return
        await self._record(run, failed, "error", None)

    async def _refuse(self, run: _Run, sink: AnswerSink, message: str, record_as: str | None = None) -> None:
        """A short reply instead of an answer, recorded as `record_as` when given."""
        refusal = Answer(question=run.text, text=message, citations=[])
        try:
            await sink.refused(message)
        except Exception as exc:  # noqa: BLE001 - _undelivered logs it with exc_info
            await self._undelivered(run, refusal, exc)
            return
        if record_as:
            await self._record(run, refusal, record_as, None)

    async def _undelivered(self, run: _Run, answer: Answer, exc: BaseException) -> None:
        """Where every reply that reached nobody ends: one error line and an `undelivered` query-log row
        keeping what would have been said, with the delivery error."""
        error = f"delivery failed: {type(exc).__name__}: {exc}"
        log.error(
            "reply undelivered",
            exc_info=None if isinstance(exc, Undelivered) else exc,  # Undelivered already names each route
            extra={
                "event": "answer_undelivered",
                "platform": run.q.platform,
                "channel": run.q.channel_id,
                "error": error,
            },
        )
        answer.error = f"{answer.error}; {error}" if answer.error else error
        await self._record(run, answer, "undelivered", None)

    async def _record(self, run: _Run, answer: Answer, outcome: str, message_id: str | None) -> None:
        """Log, count and store one handled question; never raises (the person already has their reply)."""
        self._record_now(run, answer, outcome, message_id)

    def _record_now(self, run: _Run, answer: Answer, outcome: str, message_id: str | None = None) -> None:
        """`_record` without awaiting (a cancelled task must not wait): the query-log row is queued for its
        background writer, never waited for."""
        q = run.q
        log.info(
            "question handled",
            extra={
                "event": "question",
                "platform": q.platform,
                "channel": q.channel_id,
                "answer_id": answer.id,
                "outcome": outcome,
                "arm": run.arm,
                "citations": len(answer.citations),
                "cost_usd": answer.cost_usd,
                "tokens_in": answer.tokens_in,
                "tokens_out": answer.tokens_out,
                "ms": round((time.perf_counter() - run.started) * 1000, 1),
            },
        )
        with _metrics_guard():
            metrics.observe_answer(answer, q.platform, outcome)
        if self.feedback is None:
            return
        try:
            self._store_feedback(run, answer, outcome, message_id)
        except Exception:
            log.exception(
                "storing the answer in the query log failed", extra={"event": "feedback_store_failed"}
            )

    def _store_feedback(self, run: _Run, answer: Answer, outcome: str, message_id: str | None) -> None:
        assert self.feedback is not None
        q = run.q
        self.feedback.log_answer(
            answer,
            platform=q.platform,
            channel=q.channel_id,
            user=q.user_id,
            arm=run.arm,
            outcome=outcome,
            overrides=run.overrides or None,
        )
        if message_id:
            self.feedback.link_message(
                answer.id, platform=q.platform, channel=q.channel_id, message_id=message_id
            )

    async def sources(self, q: Question, k: int | None = None) -> list[Citation]:
        """Top sources for a question, no LLM. Raises UserError for an empty question."""
        text = q.text.strip()
        if not text:
            raise UserError(EMPTY_QUESTION)
        allowed = self.allowed_sources(q.channel_id, q.is_dm)
        audience = await self.audience(q)
        return await asyncio.to_thread(
            self.engine.sources, text, allowed_sources=allowed, k=k, audience=audience
        )

    # --- admin ---------------------------------------------------------------------------------------------
    async def resync(
        self,
        user_id: str,
        roles: Sequence[str],
        source: str | None,
        full: bool,
        progress: Callable[[str], Coroutine[Any, Any, Any]],
    ) -> str:
        """Run a sync for an admin and return the report text; anyone else gets a polite refusal text."""
        if not self.is_admin(user_id, roles):
            log.info("resync refused", extra={"event": "resync_refused", "user": user_id})
            return RESYNC_REFUSAL
        if self._resync is None:
            return "Syncing is not available in this process."
        loop = asyncio.get_running_loop()

        def progress_from_thread(line: str) -> None:
            fut = asyncio.run_coroutine_threadsafe(progress(line), loop)
            try:
                fut.result(timeout=30)
            except Exception:
                log.warning("posting resync progress failed", exc_info=True)

        log.info("resync started", extra={"event": "resync", "user": user_id, "source": source, "full": full})
        try:
            return await asyncio.to_thread(self._resync, source, full, progress_from_thread)
        except RagbotError as exc:
            return f"Sync not started: {exc}"
        except Exception as exc:
            log.exception("resync failed", extra={"event": "resync_failed", "source": source})
            return f"Sync failed: {type(exc).__name__}: {exc}"

    # --- feedback ------------------------------------------------------------------------------------------
    async def _voted_answer(self, platform: str, channel: str, message_id: str, value: int) -> str | None:
        """The answer id behind a reacted-to message, or None when it is no answer or the value is no vote."""
        if self.feedback is None or value not in (1, -1):
            return None
        return await asyncio.to_thread(
            self.feedback.answer_for_message, platform=platform, channel=channel, message_id=message_id
        )

    async def vote(self, *, platform: str, channel: str, message_id: str, user: str, value: int) -> bool:
        """Record a 👍 (+1) / 👎 (-1) on a bot answer; False when the message is not an answer."""
        answer_id = await self._voted_answer(platform, channel, message_id, value)
        if answer_id is None or self.feedback is None:
            return False
        vote = Vote(answer_id=answer_id, user=user, value=value, platform=platform, channel=channel)
        await asyncio.to_thread(self.feedback.record_vote, vote)
        with _metrics_guard():
            metrics.observe_vote(platform, value)
        log.info(
            "vote recorded",
            extra={"event": "vote", "platform": platform, "answer_id": answer_id, "value": value},
        )
        return True

    async def retract(self, *, platform: str, channel: str, message_id: str, user: str, value: int) -> bool:
        """Withdraw a vote whose reaction was removed; False when there was nothing to withdraw."""
        answer_id = await self._voted_answer(platform, channel, message_id, value)
        if answer_id is None or self.feedback is None:
            return False
        removed = await asyncio.to_thread(
            self.feedback.retract_vote, answer_id=answer_id, user=user, value=value
        )
        if removed:
            with _metrics_guard():
                metrics.observe_vote(platform, value, retracted=True)
            log.info(
                "vote retracted",
                extra={"event": "vote_retracted", "platform": platform, "answer_id": answer_id},
            )
        return bool(removed)


@contextmanager
def _metrics_guard() -> Iterator[None]:
    """Around a metrics call: metrics must never break an answer (the traceback names the observer)."""
    try:
        yield
    except Exception:
        log.warning("metrics observer failed", exc_info=True, extra={"event": "metrics_failed"})
