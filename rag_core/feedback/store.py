"""The durable query log: every answer, its citations, the message that carries it, and the votes on it.

SQLite file under `settings.data_dir` by default (WAL, no server); `RAG_DATABASE_URL` points it at PostgreSQL.
The schema comes from the alembic migrations next to this file, upgraded to head whenever a store opens.
Methods are synchronous (SQLAlchemy); async callers run them with `asyncio.to_thread`. Database failures raise
`sqlalchemy.exc.SQLAlchemyError`, except for the query log's writes (`log_answer`, `link_message`), which never
wait for the database: they go into a bounded in-memory buffer that one background writer empties in order, in
batches of at most `_BATCH_ROWS` with one commit each. While the database is unreachable rows wait there, written
once it answers again; rows that do not fit are counted in `ragbot_query_log_dropped`. Reads wait (briefly) for
the rows already given, so a vote right after an answer finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    CursorResult,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    exists,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool

from rag_core.errors import ConfigError, UserError
from rag_core.feedback.models import AnswerRecord, CitationRecord, MessageLink, VoteRecord
from rag_core.feedback.outcome import outcome_of, total_latency_ms
from rag_core.settings import Settings, get_settings
from rag_core.types import Answer, Vote

log = logging.getLogger(__name__)
Write = Callable[
    [Session], None
]  # one query-log write inside the writer's transaction (no commit of its own)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_CONNECT_TIMEOUT_S = 5  # a database that accepts no connection fails a write after this, not the OS's minutes
_RETRY_S = (0.25, 0.5, 1.0, 2.0, 5.0)  # waits between attempts to write buffered rows; the last one repeats
_UNSTORABLE = re.compile(
    "[\ud800-\udfff\x00]"
)  # lone surrogates (no UTF-8 form) and NUL (PostgreSQL refuses it)
_BATCH_ROWS = 200  # query-log writes per transaction (one commit)
_REMEMBERED_IDS = 10_000  # answer ids remembered so that linking a message to one needs no read
_READ_WAIT_S = 5.0  # a read waits this long for pending writes (the database may be down)
_PG_MIGRATION_LOCK = 0x7261_6762  # pg_advisory_xact_lock key: one process migrates at a time


_ANSWERS = cast(Table, AnswerRecord.__table__)  # the query log's writer inserts rows, not ORM objects
_CITATIONS = cast(Table, CitationRecord.__table__)
_LINKS = cast(Table, MessageLink.__table__)


class UnknownAnswer(ValueError):
    """A vote or message link names an answer id the query log does not hold."""


def utc_naive(at: datetime | None = None) -> datetime:
    """Times are stored as naive UTC so SQLite and PostgreSQL read back the same values."""
    at = at or datetime.now(UTC)
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at


def database_url(settings: Settings) -> str:
    """`RAG_DATABASE_URL`, or the SQLite file under the data dir; plain postgres URLs get the psycopg 3 driver."""
    if not settings.database_url:
        return f"sqlite:///{settings.sqlite_path}"
    url = settings.database_url
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the report) never block the bots' writes
    cursor.execute("PRAGMA busy_timeout=10000")  # several bot processes may share the file
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"RAG_DATABASE_URL is not a database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, hide_parameters=True)
        else:
            engine = create_engine(
                parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}, hide_parameters=True
            )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        connect_args = (
            {"connect_timeout": _CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
        )
        return create_engine(  # pre-ping survives a restart; errors never show a row's values (questions)
            parsed, pool_pre_ping=True, connect_args=connect_args, hide_parameters=True
        )
    except Exception as exc:  # noqa: BLE001 - e.g. a driver that is not installed; the URL is redacted
        raise UserError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {exc}") from None


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Two bot processes starting together must not both create the tables of a fresh SQLite file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no advisory file locks; a race there only fails one start
        yield
        return
    with open(f"{database}.migrate-lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest migration (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _unreachable(exc: BaseException) -> bool:
    """The database is down or the connection broke (as opposed to a bad statement or a constraint)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def storable(text: str | None) -> str | None:
    """Text any database accepts: lone surrogates become U+FFFD and NULs are dropped, so no question, however
    odd, costs its row."""
    if text is None or not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def _storable(text: str) -> str:
    return storable(text) or ""


class FeedbackStore:
    """Query log and votes. Open once per process; thread-safe."""

    def __init__(self, url: str, *, user_hash_salt: str = "ragbot", buffer_rows: int = 1000) -> None:
        self._buffer: deque[Write] = deque()  # writes waiting for the writer (or the database), oldest first
        self._buffer_rows = buffer_rows
        self._buffer_lock = threading.Condition()  # notified when rows arrive and when a batch is written
        self._wake = threading.Event()
        self._closed = False
        self._writing = False  # a batch is being written
        self._down = False  # the last attempt found the database unreachable
        self._writer: threading.Thread | None = None
        self._logged: dict[str, None] = {}  # answer ids this store queued lately, oldest first (for links)
        self._engine = _make_engine(url)
        self.url = self._engine.url.render_as_string(hide_password=True)
        self._salt = user_hash_salt.encode()
        try:
            migrate(self._engine)
        except OperationalError as exc:
            self._engine.dispose()
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise UserError(f"query log database {self.url} cannot be opened: {reason}") from None
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeedbackStore:
        settings = settings or get_settings()
        return cls(database_url(settings), user_hash_salt=settings.user_hash_salt.get_secret_value())

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for read-only queries such as the admin report's (pending writes first)."""
        self.flush(_READ_WAIT_S)
        return self._engine

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the rows given so far are written; False when they still wait after `timeout` s."""
        with self._buffer_lock:
            return self._buffer_lock.wait_for(lambda: not self._buffer and not self._writing, timeout)

    def close(self) -> None:
        with self._buffer_lock:
            self._closed = True
            self._buffer_lock.notify_all()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        with self._buffer_lock:
            if self._buffer:
                log.warning(
                    "query log rows lost at shutdown: the database did not come back",
                    extra={"event": "query_log_dropped", "rows": len(self._buffer)},
                )
                _count_dropped(len(self._buffer))
                self._buffer.clear()
                _gauge_buffered(0)
        self._engine.dispose()

    @property
    def buffered(self) -> int:
        """Query-log writes waiting for the database."""
        return len(self._buffer)

    # --- writes: buffered, written by one background writer in batches --------------------------------------------

    def _write_or_buffer(self, write: Write) -> None:
        """Queue a write for the writer thread (started on first use); never waits for the database."""
        with self._buffer_lock:
            if len(self._buffer) >= self._buffer_rows:
                self._buffer.popleft()
                _count_dropped(1)
            self._buffer.append(write)
            _gauge_buffered(len(self._buffer))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_batches, name="query-log-writer", daemon=True
                )
                self._writer.start()
            self._buffer_lock.notify_all()

    def _write_batches(self) -> None:
        """The writer: the oldest rows in batches, one transaction each; waits longer after each failed try
        while the database is unreachable; leaves when closed and done (or closed and the database is down)."""
        attempt = 0
        while True:
            with self._buffer_lock:
                self._buffer_lock.wait_for(lambda: bool(self._buffer) or self._closed)
                if not self._buffer or (self._closed and self._down):
                    return
                batch = list(self._buffer)[:_BATCH_ROWS]
                self._writing = True
            try:
                written = self._write_batch(batch)
            except SQLAlchemyError as exc:  # unreachable: keep the rows, try again later
                with self._buffer_lock:
                    self._writing = False
                    self._buffer_lock.notify_all()
                if not self._down:
                    self._down = True
                    log.warning(
                        "query log database unreachable; buffering rows until it answers",
                        extra={
                            "event": "query_log_down",
                            "error": type(getattr(exc, "orig", None) or exc).__name__,
                        },
                    )
                if self._closed:
                    return
                self._wake.wait(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                self._wake.clear()
                attempt += 1
                continue
            with self._buffer_lock:
                for write in batch:  # rows dropped from a full buffer meanwhile are gone already
                    if self._buffer and self._buffer[0] is write:
                        self._buffer.popleft()
                self._writing = False
                _gauge_buffered(len(self._buffer))
                self._buffer_lock.notify_all()
            if self._down:
                self._down, attempt = False, 0
                log.info(
                    "query log database reachable again; buffered rows written",
                    extra={"event": "query_log_up", "rows": written},
                )

    def _write_batch(self, batch: list[Write]) -> int:
        """Write rows in one transaction; if the batch is refused as a whole, each row alone (a refused row is
        dropped and counted). Raises SQLAlchemyError only when the database is unreachable."""
        try:
            with self._sessions() as session, session.begin():
                for write in batch:
                    write(session)
            return len(batch)
        except SQLAlchemyError as exc:
            if _unreachable(exc):
                raise
        except UnknownAnswer:
            pass
        written = 0
        for write in batch:
            try:
                with self._sessions() as session, session.begin():
                    write(session)
                written += 1
            except SQLAlchemyError as exc:
                if _unreachable(exc):
                    raise
                error = type(getattr(exc, "orig", None) or exc).__name__  # no statement, no values
                log.warning(
                    "a query log row was refused; dropped",
                    extra={"event": "query_log_refused", "error": error},
                )
                _count_dropped(1)
            except UnknownAnswer:  # its answer row was dropped from a full buffer
                _count_dropped(1)
        return written

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def hash_user(self, user: str) -> str:
        """A salted, one-way id for a person: the log can count and group people without naming them."""
        return hmac.new(self._salt, user.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    # --- answers -------------------------------------------------------------------------------------------------

    def log_answer(
        self,
        answer: Answer,
        *,
        platform: str,
        channel: str,
        user: str,
        arm: str | None = None,
        outcome: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Log one question and what was answered. `at` defaults to now; an id logged before is kept as it was.
        While the database is unreachable the row waits in the buffer (see the module docstring)."""
        outcome = outcome_of(answer, outcome)  # an unknown outcome is the caller's error, raised here
        # A plain copy now (the caller may change the answer afterwards); the ORM row is built by the writer, off
        # the answer path, where building it cost about half a millisecond per answer.
        snapshot = replace(
            answer,
            citations=[
                replace(c, heading_path=list(c.heading_path), readers=list(c.readers))
                for c in answer.citations
            ],
            timings_ms=dict(answer.timings_ms),
        )
        created_at = utc_naive(at)
        with self._buffer_lock:
            self._logged[answer.id] = None
            while len(self._logged) > _REMEMBERED_IDS:
                self._logged.pop(next(iter(self._logged)))
        self._write_or_buffer(
            lambda session: self._insert_answer(
                session,
                *self._answer_rows(snapshot, platform, channel, user, arm, outcome, overrides, created_at),
            )
        )

    def _answer_rows(
        self,
        answer: Answer,
        platform: str,
        channel: str,
        user: str,
        arm: str | None,
        outcome: str | None,
        overrides: Mapping[str, Any] | None,
        created_at: datetime,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The answer's row and its citations' rows, as the answer is now."""
        row = {
            "id": answer.id,
            "created_at": created_at,
            "platform": _storable(platform),
            "channel": _storable(channel),
            "user_hash": self.hash_user(user),
            "question": _storable(answer.question),
            "answer_text": _storable(answer.text),
            "outcome": outcome_of(answer, outcome),
            "abstained": answer.abstained,
            "extractive": answer.extractive,
            "cache_hit": answer.cache_hit,
            "tokens_in": answer.tokens_in,
            "tokens_out": answer.tokens_out,
            "cost_usd": answer.cost_usd,
            "latency_ms": total_latency_ms(answer),
            "timings_ms": dict(answer.timings_ms),
            "model": storable(answer.model),
            "error": storable(answer.error),
            "arm": arm,
            "overrides": dict(overrides) if overrides is not None else None,
        }
        citations = [
            {
                "answer_id": answer.id,
                "n": c.n,
                "source": _storable(c.source),
                "doc_id": _storable(c.doc_id),
                "title": _storable(c.title),
                "url": _storable(c.url),
                "score": float(c.score),
                "heading_path": [_storable(h) for h in c.heading_path],
                "snippet": _storable(c.snippet),
                "readers": list(c.readers),
            }
            for c in answer.citations
        ]
        return row, citations

    @staticmethod
    def _insert_answer(session: Session, row: dict[str, Any], citations: list[dict[str, Any]]) -> None:
        # Plain inserts: the ORM's unit of work (a read per row, then flush) cost more CPU per answer than its
        # search. An id logged before is refused by its primary key; the batch is then written row by row and
        # the first row stays.
        session.execute(insert(_ANSWERS), [row])
        if citations:
            session.execute(insert(_CITATIONS), citations)

    def get_answer(self, answer_id: str) -> AnswerRecord | None:
        """The logged answer with its citations, or None."""
        self.flush(_READ_WAIT_S)
        with self._sessions() as session:
            stmt = (
                select(AnswerRecord)
                .where(AnswerRecord.id == answer_id)
                .options(selectinload(AnswerRecord.citations))
            )
            return session.scalars(stmt).first()

    # --- message links ---------------------------------------------------------------------------------------------

    def link_message(self, answer_id: str, *, platform: str, channel: str, message_id: str) -> None:
        """Remember that this platform message shows this answer (a repeated link moves it); buffered like
        `log_answer` while the database is unreachable."""
        with self._buffer_lock:
            known = answer_id in self._logged
        if not known:  # not logged by this process lately: refuse an unknown id now, as a read would
            self.flush(_READ_WAIT_S)
            with self._sessions() as session:
                self._require_answer(session, answer_id)
        self._write_or_buffer(lambda session: self._link(session, answer_id, platform, channel, message_id))

    @staticmethod
    def _link(session: Session, answer_id: str, platform: str, channel: str, message_id: str) -> None:
        # An answer that is not logged (dropped from a full buffer) fails the foreign key: the row is refused.
        table = _LINKS
        key = (
            (table.c.platform == platform) & (table.c.channel == channel) & (table.c.message_id == message_id)
        )
        moved = cast(
            "CursorResult[Any]", session.execute(update(table).where(key).values(answer_id=answer_id))
        )
        if moved.rowcount == 0:
            row = {"platform": platform, "channel": channel, "message_id": message_id, "answer_id": answer_id}
            session.execute(insert(table), [row])

    def answer_for_message(self, *, platform: str, channel: str, message_id: str) -> str | None:
        self.flush(_READ_WAIT_S)
        with self._sessions() as session:
            link = session.get(MessageLink, (platform, channel, message_id))
            return link.answer_id if link else None

    # --- votes -------------------------------------------------------------------------------------------------------

    def record_vote(self, vote: Vote) -> None:
        """Store a 👍 (+1) or 👎 (-1); the same person's earlier vote on that answer is replaced."""
        if vote.value not in (1, -1):
            raise ValueError(f"a vote is +1 or -1, not {vote.value!r}")
        user_hash = self.hash_user(vote.user)
        self.flush(_READ_WAIT_S)
        for attempt in range(2):
            with self._sessions() as session:
                try:
                    with session.begin():
                        self._require_answer(session, vote.answer_id)
                        record = session.get(VoteRecord, (vote.answer_id, user_hash))
                        if record is None:
                            record = VoteRecord(answer_id=vote.answer_id, user_hash=user_hash)
                            session.add(record)
                        record.value = vote.value
                        record.platform = vote.platform
                        record.channel = vote.channel
                        record.created_at = utc_naive()
                    return
                except IntegrityError:  # a concurrent first vote by the same person: replace it
                    if attempt:
                        raise

    def retract_vote(self, *, answer_id: str, user: str, value: int | None = None) -> bool:
        """Remove a person's vote (only if it has `value`, when given); True when one was removed."""
        stmt = delete(VoteRecord).where(
            VoteRecord.answer_id == answer_id, VoteRecord.user_hash == self.hash_user(user)
        )
        if value is not None:
            stmt = stmt.where(VoteRecord.value == value)
        with self._sessions() as session, session.begin():
            result = cast("CursorResult[Any]", session.execute(stmt))  # a DELETE's result has a rowcount
            return bool(result.rowcount > 0)

    def votes(self, answer_id: str) -> list[Vote]:
        """The votes on an answer; `Vote.user` holds the hashed voter id."""
        self.flush(_READ_WAIT_S)
        with self._sessions() as session:
            rows = session.scalars(
                select(VoteRecord).where(VoteRecord.answer_id == answer_id).order_by(VoteRecord.created_at)
            )
            return [
                Vote(
                    answer_id=r.answer_id,
                    user=r.user_hash,
                    value=r.value,
                    platform=r.platform,
                    channel=r.channel,
                )
                for r in rows
            ]

    @staticmethod
    def _require_answer(session: Session, answer_id: str) -> None:
        if not session.scalar(select(exists().where(AnswerRecord.id == answer_id))):
            raise UnknownAnswer(f"no answer with id {answer_id!r} in the query log")


def _count_dropped(rows: int) -> None:
    from rag_core.feedback.metrics import QUERY_LOG_DROPPED

    QUERY_LOG_DROPPED.inc(rows)


def _gauge_buffered(rows: int) -> None:
    from rag_core.feedback.metrics import QUERY_LOG_BUFFERED

    QUERY_LOG_BUFFERED.set(rows)
