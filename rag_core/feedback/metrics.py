"""Prometheus metrics of this process, on ragbot's own registry (served at /metrics by `feedback.http`)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rag_core.feedback.outcome import outcome_of, total_latency_ms
from rag_core.types import Answer

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds; answers run from ~50 ms (cache hit) to tens of seconds (slow LLM with retries).
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)

QUESTIONS = Counter(
    "ragbot_questions",
    "Questions received, by platform and outcome (answered, abstained, error, rate_limited, busy, cancelled, undelivered).",
    ["platform", "outcome"],
    registry=REGISTRY,
)
ANSWER_LATENCY = Histogram(
    "ragbot_answer_latency_seconds",
    "End-to-end time to answer a question (not counting rate-limited ones).",
    ["platform"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
STAGE_LATENCY = Histogram(
    "ragbot_stage_latency_seconds",
    "Time spent in each engine stage (retrieve, rerank, generate, ...).",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "ragbot_cache_hits", "Answers served from the answer cache.", ["platform"], registry=REGISTRY
)
LLM_TOKENS = Counter(
    "ragbot_llm_tokens",
    "LLM tokens used, by model and direction (in, out).",
    ["model", "direction"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "ragbot_llm_cost_usd", "Estimated LLM spend in USD, by model.", ["model"], registry=REGISTRY
)
VOTES = Counter(
    "ragbot_votes",
    "👍/👎 votes recorded, by platform and value (up, down).",
    ["platform", "value"],
    registry=REGISTRY,
)
VOTES_RETRACTED = Counter(
    "ragbot_votes_retracted",
    "Votes removed again, by platform and value (up, down).",
    ["platform", "value"],
    registry=REGISTRY,
)
SYNC_DOCUMENTS = Counter(
    "ragbot_sync_documents",
    "Documents seen by syncs, by source and action (added, updated, deleted, unchanged, skipped).",
    ["source", "action"],
    registry=REGISTRY,
)
SYNC_ERRORS = Counter(
    "ragbot_sync_errors",
    "Syncs of a source that failed (the previous index stays served).",
    ["source"],
    registry=REGISTRY,
)
SYNC_DURATION = Gauge(
    "ragbot_sync_duration_seconds", "Duration of the last sync of a source.", ["source"], registry=REGISTRY
)
SYNC_LAST_SUCCESS = Gauge(
    "ragbot_sync_last_success_timestamp_seconds",
    "Unix time of the last successful sync of a source.",
    ["source"],
    registry=REGISTRY,
)

QUERY_LOG_BUFFERED = Gauge(
    "ragbot_query_log_buffered",
    "Query-log rows waiting in memory for the database to come back.",
    registry=REGISTRY,
)
QUERY_LOG_DROPPED = Counter(
    "ragbot_query_log_dropped",
    "Query-log rows lost: the in-memory buffer was full while the database was down (or the process stopped).",
    registry=REGISTRY,
)

ANSWERS_IN_FLIGHT = Gauge(
    "ragbot_answers_in_flight",
    "Answers being generated right now (Slack, Discord and the API together).",
    registry=REGISTRY,
)

_SYNC_ACTIONS = ("added", "updated", "deleted", "unchanged", "skipped", "permissions_changed")


def observe_answer(answer: Answer, platform: str, outcome: str | None = None) -> None:
    """Count one question; the outcome defaults to what the answer implies (abstained or answered)."""
    outcome = outcome_of(answer, outcome)
    QUESTIONS.labels(platform=platform, outcome=outcome).inc()
    if outcome in ("rate_limited", "busy"):
        return  # never reached the engine: no latency, tokens or cost to count
    ANSWER_LATENCY.labels(platform=platform).observe(total_latency_ms(answer) / 1000)
    for stage, ms in answer.timings_ms.items():
        if stage != "total":
            STAGE_LATENCY.labels(stage=stage).observe(ms / 1000)
    if answer.cache_hit:
        CACHE_HITS.labels(platform=platform).inc()
    model = answer.model or "none"
    if answer.tokens_in:
        LLM_TOKENS.labels(model=model, direction="in").inc(answer.tokens_in)
    if answer.tokens_out:
        LLM_TOKENS.labels(model=model, direction="out").inc(answer.tokens_out)
    if answer.cost_usd:
        LLM_COST.labels(model=model).inc(answer.cost_usd)


def set_answers_in_flight(count: int) -> None:
    ANSWERS_IN_FLIGHT.set(count)


def _vote_label(value: int) -> str:
    if value not in (1, -1):
        raise ValueError(f"a vote is +1 or -1, not {value!r}")
    return "up" if value > 0 else "down"


def observe_vote(platform: str, value: int, retracted: bool = False) -> None:
    counter = VOTES_RETRACTED if retracted else VOTES
    counter.labels(platform=platform, value=_vote_label(value)).inc()


def _field(report: Any, name: str, default: Any = None) -> Any:
    """Reads a sync report field from the connectors' `SyncReport` dataclass or its JSON dict."""
    if isinstance(report, dict):
        return report.get(name, default)
    return getattr(report, name, default)


def observe_sync(source: str, report: Any) -> None:
    """Record one sync of a source: documents per action, failure or the time of success, duration."""
    for action in _SYNC_ACTIONS:
        count = _field(report, action, 0)
        if isinstance(count, list | tuple):  # skipped is a list of (path, reason)
            count = len(count)
        if count:
            SYNC_DOCUMENTS.labels(source=source, action=action).inc(count)
    duration = _field(report, "duration_s")
    if duration is not None:
        SYNC_DURATION.labels(source=source).set(duration)
    errors = SYNC_ERRORS.labels(source=source)  # created at 0 so alerts see the series before a failure
    if _field(report, "error"):
        errors.inc()
    else:
        SYNC_LAST_SUCCESS.labels(source=source).set(time.time())
