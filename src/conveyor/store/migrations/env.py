"""Alembic environment of the job store: runs on the connection the caller passes in.

Conveyor runs migrations programmatically (:mod:`conveyor.store.schema`); there is no
``alembic.ini``. The version table is ``<prefix>schema_version`` (by default
``conveyor_schema_version``) so that a database shared with an application's own
Alembic history keeps both apart.
"""

from __future__ import annotations

from alembic import context

from conveyor.store.models import Base
from conveyor.store.schema import version_table

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=version_table(),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
