"""Table prefix and API key limits.

Stores made before table prefixes named their tables ``jobs``, ``dead_letters``,
``batches`` and ``api_keys``: they are renamed to the configured prefix (default
``conveyor_``), with their indexes and (PostgreSQL) constraints, so that an
application's own ``jobs`` table can live in the same database. API keys gain
the queues and the highest priority they may submit with.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.store import models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    prefix = models.table_prefix()
    bind = op.get_bind()
    if prefix:
        existing = set(sa.inspect(bind).get_table_names())
        for base in models.BASE_NAMES:
            if base in existing and prefix + base not in existing:
                _rename(bind, base, prefix + base)
    keys = prefix + "api_keys"
    op.add_column(keys, sa.Column("queues", sa.JSON(none_as_null=True), nullable=True))
    op.add_column(keys, sa.Column("max_priority", sa.SmallInteger(), nullable=True))


def _rename(bind: sa.Connection, old: str, new: str) -> None:
    """Rename table ``old`` to ``new``, and the indexes and constraints named after it."""
    inspector = sa.inspect(bind)
    indexes = [index["name"] for index in inspector.get_indexes(old) if index["name"]]
    op.rename_table(old, new)
    table = models.Base.metadata.tables[models.DEFAULT_PREFIX + old]
    if bind.dialect.name == "postgresql":
        for name in indexes:
            if name.startswith(f"ix_{old}_"):
                renamed = f"ix_{new}_" + name.removeprefix(f"ix_{old}_")
                op.execute(f'ALTER INDEX "{name}" RENAME TO "{renamed}"')
        # PostgreSQL named the primary key and unique constraints after the table
        # (``jobs_pkey``): an application's own ``jobs`` table would collide with them.
        for row in bind.execute(
            sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
            {"t": new},
        ):
            name = row[0]
            if name.startswith(f"{old}_"):
                renamed = f"{new}_" + name.removeprefix(f"{old}_")
                op.execute(f'ALTER TABLE "{new}" RENAME CONSTRAINT "{name}" TO "{renamed}"')
        return
    # SQLite cannot rename an index: drop each and create it under its new name.
    for name in indexes:
        if name.startswith(f"ix_{old}_"):
            op.drop_index(name, table_name=new)
    for index in table.indexes:
        index.create(bind)


def downgrade() -> None:
    """Revert this revision (the tables keep their prefixed names)."""
    keys = models.table_prefix() + "api_keys"
    op.drop_column(keys, "max_priority")
    op.drop_column(keys, "queues")
