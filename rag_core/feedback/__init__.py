"""Feedback and observability: the query log with votes, Prometheus metrics, health probes, A/B arms, the report."""

from rag_core.feedback.store import FeedbackStore, UnknownAnswer

__all__ = ["FeedbackStore", "UnknownAnswer"]
