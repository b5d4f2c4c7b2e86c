"""The schedule: triggers from settings, jobs in a real Redis job store, and a real in-process run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

import connectors.schedule as schedule
from connectors.schedule import configure, start_in_process, trigger_for
from rag_core.errors import ConfigError
from rag_core.settings import SourceConfig
from tests.connectors import exports


def source(name: str, **when) -> SourceConfig:
    return SourceConfig(name=name, kind="drive", path=exports.SAMPLES / "drive-people", **when)


def test_triggers_from_settings() -> None:
    interval = trigger_for(source("a", interval_minutes=30))
    assert isinstance(interval, IntervalTrigger) and interval.interval == timedelta(minutes=30)
    cron = trigger_for(source("b", cron="15 */2 * * 1-5"))
    assert isinstance(cron, CronTrigger)
    assert cron.get_next_fire_time(None, datetime(2025, 3, 3, 9, 0, tzinfo=UTC)) == datetime(
        2025, 3, 3, 10, 15, tzinfo=UTC
    )
    assert trigger_for(source("manual")) is None


@pytest.mark.parametrize(
    ("cron", "next_fire"),
    [
        (
            "0 3 * * 0",
            datetime(2025, 3, 9, 3, tzinfo=UTC),
        ),  # 0 = Sunday, as in crontab (APScheduler 3: Monday)
        ("0 3 * * 7", datetime(2025, 3, 9, 3, tzinfo=UTC)),
        ("0 3 * * 6", datetime(2025, 3, 8, 3, tzinfo=UTC)),
        ("0 3 * * 0-1", datetime(2025, 3, 9, 3, tzinfo=UTC)),
        ("0 3 * * 2,4", datetime(2025, 3, 4, 3, tzinfo=UTC)),
        ("0 3 * * sat", datetime(2025, 3, 8, 3, tzinfo=UTC)),
    ],
)
def test_crontab_weekday_numbers_follow_cron(cron: str, next_fire: datetime) -> None:
    monday_morning = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    assert trigger_for(source("c", cron=cron)).get_next_fire_time(None, monday_morning) == next_fire


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"cron": "61 * * * *"}, "source 'x' has an invalid cron '61 \\* \\* \\* \\*'"),
        ({"cron": "0 * * * *", "interval_minutes": 5}, "source 'x' sets both cron and interval_minutes"),
        ({"interval_minutes": 0}, "source 'x': interval_minutes must be positive"),
    ],
)
def test_bad_schedules_are_user_errors(when: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        trigger_for(source("x", **when))


def test_jobs_live_in_the_redis_job_store_and_stale_ones_are_removed(make_engine, clean_redis: str) -> None:
    engine, settings = make_engine([source("old", interval_minutes=5)], redis_url=clean_redis)
    first = BackgroundScheduler()
    configure(first, settings, engine.index_writer())
    first.start(paused=True)
    first.shutdown(wait=False)
    jobs_key = f"ragbot.{settings.collection}.apscheduler.jobs"
    client = redis.Redis.from_url(clean_redis)
    assert client.hkeys(jobs_key) == [b"sync:old"]

    replica = settings.model_copy(
        update={
            "sources": [
                source("wiki", interval_minutes=30),
                source("drive", cron="0 3 * * *"),
                source("hand"),
            ]
        }
    )
    scheduler = BackgroundScheduler()
    job_ids = configure(scheduler, replica, engine.index_writer())
    scheduler.start(paused=True)
    try:
        assert job_ids == ["sync:wiki", "sync:drive"]
        assert sorted(client.hkeys(jobs_key)) == [b"sync:drive", b"sync:wiki"]
        job = scheduler.get_job("sync:drive")
        assert job.func is schedule.scheduled_sync and job.args == ("drive",)
        assert job.next_run_time - datetime.now(UTC) <= timedelta(seconds=5)  # never synced: run at once
    finally:
        scheduler.shutdown(wait=False)


def test_in_process_schedule_syncs_a_never_synced_source_at_once(make_engine, tmp_path: Path) -> None:
    drive = exports.copy_sample("drive-people", tmp_path)
    config = SourceConfig(name="people-drive", kind="drive", path=drive, interval_minutes=60)
    engine, settings = make_engine([config])
    scheduler = start_in_process(engine, settings)
    try:
        deadline = time.monotonic() + 180
        while not engine.index_writer().document_versions("people-drive"):
            assert time.monotonic() < deadline, "the scheduled sync did not run"
            time.sleep(0.2)
        job = scheduler.get_job("sync:people-drive")
        assert job.next_run_time - datetime.now(UTC) > timedelta(minutes=55)  # then every 60 minutes
    finally:
        scheduler.shutdown(wait=True)
    assert len(engine.index_writer().document_versions("people-drive")) == 3
    assert list((settings.data_dir / "sync-reports" / "people-drive").glob("*.json"))


def test_main_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    monkeypatch.setattr(schedule, "get_settings", lambda: settings)
    with pytest.raises(ConfigError, match="no sources are configured: set RAG_SOURCES"):
        schedule.main()
    monkeypatch.setattr(
        schedule, "get_settings", lambda: settings.model_copy(update={"sources": [source("hand")]})
    )
    with pytest.raises(ConfigError, match="no source sets interval_minutes or cron"):
        schedule.main()
