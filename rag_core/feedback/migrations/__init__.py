"""Alembic migrations of the query log; run by `FeedbackStore` on start (upgrade head)."""
