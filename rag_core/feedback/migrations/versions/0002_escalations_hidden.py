"""Team workflow: escalations to a person, and documents an admin hid from answers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column(
            "answer_id", sa.String(64), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("asked_by", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_escalations_channel", "escalations", ["channel"])
    op.create_index("ix_escalations_created_at", "escalations", ["created_at"])
    op.create_table(
        "hidden_documents",
        sa.Column("source", sa.String(128), primary_key=True),
        sa.Column("doc_id", sa.String(512), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("hidden_by", sa.String(64), nullable=False),
        sa.Column("hidden_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hidden_documents")
    op.drop_index("ix_escalations_created_at", "escalations")
    op.drop_index("ix_escalations_channel", "escalations")
    op.drop_table("escalations")
