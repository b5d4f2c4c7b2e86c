"""Curated answers: what a person answered, saved to be cited like any source.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "curated_answers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_hash", sa.String(64), nullable=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("channel_name", sa.String(200), nullable=False),
        sa.Column("thread_url", sa.Text(), nullable=False),
        sa.Column("readers", sa.JSON(), nullable=True),
        sa.Column("source_answer_id", sa.String(64), nullable=True),
        sa.Column("cited", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_curated_answers_created_at", "curated_answers", ["created_at"])
    op.create_index("ix_curated_answers_source_answer_id", "curated_answers", ["source_answer_id"])


def downgrade() -> None:
    op.drop_index("ix_curated_answers_source_answer_id", "curated_answers")
    op.drop_index("ix_curated_answers_created_at", "curated_answers")
    op.drop_table("curated_answers")
