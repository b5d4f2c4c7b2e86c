"""Who may read each cited document, so sharing a private answer into a channel can be re-checked.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("answer_citations") as batch:
        batch.add_column(sa.Column("readers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answer_citations") as batch:
        batch.drop_column("readers")
