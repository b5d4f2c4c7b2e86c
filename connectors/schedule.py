"""Each configured source re-synced on its own schedule (APScheduler 3): `interval_minutes` or `cron`.

With Redis, jobs live in a Redis job store shared by the replicas, and `connectors.sync` takes a per-source Redis
lock, so two replicas never sync the same source at once. The embedded store can be opened by one process only;
then the bot process runs the schedule itself (`start_in_process`) instead of the `scheduler` Procfile process.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connectors.registry import check_kinds
from connectors.sync import default_kv, run_sync
from rag_core.errors import ConfigError, RagbotError, StoreUnavailable
from rag_core.kv import KeyValue
from rag_core.settings import Settings, SourceConfig, get_settings

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.indexing import IndexWriter

log = logging.getLogger(__name__)

JOB_PREFIX = "sync:"
_MISFIRE_GRACE_S = 3600  # a run missed by less than this (process busy or down) still happens, once


@dataclass
class _Runtime:
    settings: Settings
    writer: IndexWriter
    kv: KeyValue


# Jobs in a Redis job store are stored by reference ("connectors.schedule:scheduled_sync"), so the function that
# runs them must be module-level; it finds this process's writer here.
_runtime: _Runtime | None = None


def scheduled_sync(source: str) -> None:
    """The job: sync one source now (skipped, with a log line, when another process is syncing it)."""
    runtime = _runtime
    if runtime is None:
        log.warning(
            "scheduled sync with no runtime in this process",
            extra={"event": "sync_skipped", "source": source},
        )
        return
    try:
        run_sync(runtime.settings, runtime.writer, source=source, kv=runtime.kv)
    except RagbotError as exc:  # e.g. the source was removed from the settings since the job was stored
        log.warning(
            "scheduled sync not run", extra={"event": "sync_skipped", "source": source, "error": str(exc)}
        )


def trigger_for(config: SourceConfig) -> IntervalTrigger | CronTrigger | None:
    """The source's trigger; None for a source synced only by hand. Bad values raise `ConfigError`."""
    if config.cron and config.interval_minutes:
        raise ConfigError(f"source {config.name!r} sets both cron and interval_minutes; keep one")
    if config.cron:
        try:
            return crontab_trigger(config.cron)
        except ValueError as exc:
            raise ConfigError(f"source {config.name!r} has an invalid cron {config.cron!r}: {exc}") from exc
    if config.interval_minutes is not None:
        if config.interval_minutes <= 0:
            raise ConfigError(f"source {config.name!r}: interval_minutes must be positive")
        return IntervalTrigger(minutes=config.interval_minutes, timezone=UTC)
    return None


_CRON_DAYS = [
    "sun",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
]  # crontab numbers 0-7 (0 and 7 = Sunday)


def crontab_trigger(expr: str) -> CronTrigger:
    """A trigger for a standard crontab line. APScheduler 3 reads weekday numbers Monday-first (0 = Monday) even in
    `from_crontab`, so numeric weekdays are rewritten as names first: "1-5" is Monday to Friday, as in cron."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    fields[4] = ",".join(_weekday_names(part) for part in fields[4].split(","))
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)


def _weekday_names(part: str) -> str:
    if part.startswith("*") or not part[:1].isdigit():
        return part  # "*", "*/2", or already names
    if "/" in part:
        raise ValueError(f"steps in numeric weekdays ({part!r}) are not supported; use names like mon-fri")
    first, _, last = part.partition("-")
    if not first.isdigit() or not (last.isdigit() or not last) or int(first) > 7 or int(last or 0) > 7:
        raise ValueError(f"invalid weekday {part!r}")
    if not last:
        return _CRON_DAYS[int(first)]
    start, end = int(first), int(last)
    if start > end:
        raise ValueError(f"invalid weekday range {part!r}")
    if start == 0:  # Sunday first: APScheduler's week starts on Monday
        return "sun" if end == 0 else f"sun,mon-{_CRON_DAYS[end]}" if end > 1 else "sun,mon"
    return _CRON_DAYS[start] if start == end else f"{_CRON_DAYS[start]}-{_CRON_DAYS[end]}"


def job_store(settings: Settings) -> MemoryJobStore | RedisJobStore:
    """A Redis job store when Redis is configured (shared by replicas), else in memory."""
    if not settings.redis_url:
        return MemoryJobStore()
    prefix = f"ragbot.{settings.collection}.apscheduler"
    store = RedisJobStore(jobs_key=f"{prefix}.jobs", run_times_key=f"{prefix}.run_times")
    store.redis = redis.Redis.from_url(settings.redis_url)  # the URL carries host, port, db, password, TLS
    try:
        store.redis.ping()
    except redis.RedisError as exc:
        log.warning(
            "redis unreachable; keeping the schedule in memory",
            extra={"event": "redis_down", "error": type(exc).__name__},
        )
        return MemoryJobStore()
    return store


def configure(
    scheduler: BaseScheduler, settings: Settings, writer: IndexWriter, kv: KeyValue | None = None
) -> list[str]:
    """Add one job per scheduled source (and drop jobs of sources no longer configured); returns the job ids."""
    global _runtime
    check_kinds(settings.sources)  # a bad kind fails at start, not at the first scheduled run
    _runtime = _Runtime(settings, writer, kv or default_kv(settings.redis_url))
    triggers = {c.name: trigger_for(c) for c in settings.sources}
    store = job_store(settings)
    _drop_stale_jobs(store, {f"{JOB_PREFIX}{name}" for name, t in triggers.items() if t is not None})
    scheduler.configure(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=1)},  # one sync at a time per process
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": _MISFIRE_GRACE_S},
        timezone=UTC,
    )
    job_ids: list[str] = []
    for name, trigger in triggers.items():
        if trigger is None:
            log.info("source synced by hand only", extra={"event": "schedule", "source": name})
            continue
        kwargs: dict[str, Any] = {}
        if not writer.document_versions(name):
            kwargs["next_run_time"] = datetime.now(UTC)  # never synced: do it now, not after a full interval
        job = scheduler.add_job(
            scheduled_sync,
            trigger,
            args=[name],
            id=f"{JOB_PREFIX}{name}",
            name=f"sync {name}",
            replace_existing=True,
            **kwargs,
        )
        job_ids.append(job.id)
        log.info("source scheduled", extra={"event": "schedule", "source": name, "trigger": str(trigger)})
    return job_ids


def _drop_stale_jobs(store: MemoryJobStore | RedisJobStore, keep: set[str]) -> None:
    """Remove stored jobs of sources no longer scheduled (only a shared Redis store outlives a process)."""
    if not isinstance(store, RedisJobStore):
        return
    for raw in store.redis.hkeys(store.jobs_key):
        job_id = raw.decode()
        if job_id.startswith(JOB_PREFIX) and job_id not in keep:
            store.remove_job(job_id)
            log.info(
                "removed the schedule of an unscheduled source", extra={"event": "schedule", "job": job_id}
            )


def start_in_process(engine: Engine, settings: Settings | None = None) -> BackgroundScheduler:
    """Run the schedule in a background thread of this process (the bot, when the store is embedded).

    Returns the started scheduler; call `.shutdown()` to stop it.
    """
    settings = settings or engine.settings
    scheduler = BackgroundScheduler()
    configure(scheduler, settings, engine.index_writer())
    scheduler.start()
    return scheduler


def main() -> int:
    """The `scheduler` Procfile process: run every source on its schedule until stopped."""
    from rag_core.engine import Engine
    from rag_core.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    if not settings.sources:
        raise ConfigError("no sources are configured: set RAG_SOURCES (see docs/connectors.md)")
    if not any(trigger_for(c) for c in settings.sources):
        raise ConfigError("no source sets interval_minutes or cron: nothing to schedule (use `ragbot sync`)")
    if not settings.qdrant_url:
        log.warning(
            "embedded store: only one process can open it. This works while no bot process runs; otherwise the "
            "bot runs the schedule itself, or set RAG_QDRANT_URL to use a separate scheduler process.",
            extra={"event": "schedule_embedded_store"},
        )
    try:
        engine = Engine.from_settings(settings)
    except StoreUnavailable as exc:
        if settings.qdrant_url:
            raise
        raise StoreUnavailable(
            f"{exc}. With the embedded store (no RAG_QDRANT_URL) the bot process runs the sync schedule itself; "
            "run a separate scheduler process only against a Qdrant server."
        ) from exc
    from rag_core.feedback.http import serve_health
    from rag_core.kv import make_kv

    # sync metrics (documents, errors, last success per source) are scraped from this process
    health = serve_health(settings.http_port, engine, make_kv(settings.redis_url))
    scheduler = BlockingScheduler()
    job_ids = configure(scheduler, settings, engine.index_writer())

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # leave scheduler.start(); a sync in flight finishes, or its transaction aborts

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler started", extra={"event": "scheduler_start", "jobs": job_ids})
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
        health.stop()
        engine.close()
    return 0
