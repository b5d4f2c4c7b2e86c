"""Alembic environment: runs on the connection `rag_core.feedback.store.migrate` hands it, no alembic.ini."""

from __future__ import annotations

from alembic import context

from rag_core.feedback.models import Base

VERSION_TABLE = (
    "ragbot_alembic_version"  # our own name, so a shared database's other alembic users don't clash
)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ragbot migrations through rag_core.feedback.store.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through table copies
)
with context.begin_transaction():
    context.run_migrations()
