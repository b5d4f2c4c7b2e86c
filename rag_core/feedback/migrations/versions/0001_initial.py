"""Query log: answers, their citations, message links and votes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer_text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("extractive", sa.Boolean(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("overrides", sa.JSON(), nullable=True),
    )
    op.create_index("ix_answers_created_at", "answers", ["created_at"])
    op.create_index("ix_answers_channel", "answers", ["channel"])
    op.create_index("ix_answers_user_hash", "answers", ["user_hash"])
    op.create_index("ix_answers_outcome", "answers", ["outcome"])
    op.create_index("ix_answers_arm", "answers", ["arm"])

    op.create_table(
        "answer_citations",
        sa.Column(
            "answer_id", sa.String(64), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("n", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("heading_path", sa.JSON(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
    )
    op.create_index("ix_answer_citations_source", "answer_citations", ["source"])

    op.create_table(
        "answer_messages",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(128), primary_key=True),
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column(
            "answer_id", sa.String(64), sa.ForeignKey("answers.id", ondelete="CASCADE"), nullable=False
        ),
    )
    op.create_index("ix_answer_messages_answer_id", "answer_messages", ["answer_id"])

    op.create_table(
        "votes",
        sa.Column(
            "answer_id", sa.String(64), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("user_hash", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_table("answer_messages")
    op.drop_index("ix_answer_citations_source", "answer_citations")
    op.drop_table("answer_citations")
    for column in ("arm", "outcome", "user_hash", "channel", "created_at"):
        op.drop_index(f"ix_answers_{column}", "answers")
    op.drop_table("answers")
