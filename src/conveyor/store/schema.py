"""Schema migrations (Alembic), run from the package: no ``alembic.ini`` to ship.

:func:`upgrade` brings a database to the newest revision this code knows. A database
whose revision this code does not know (written by a newer Conveyor) is refused with
a clear :class:`~conveyor.errors.StoreError` rather than being used or altered.
Concurrent upgrades (two recorders starting at once) are serialised: PostgreSQL by
an advisory lock, SQLite by a lock file beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from conveyor.errors import StoreError
from conveyor.settings import mask_url

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "conveyor_schema_version"
_PG_LOCK_ID = 0x636F6E76  # "conv": the advisory lock held while migrating


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def check_known(revision: str | None, url: str) -> None:
    """:class:`StoreError` if ``revision`` is not one this code knows (a newer schema)."""
    if revision is None:
        return
    script = ScriptDirectory.from_config(_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise StoreError(
            f"the job store at {mask_url(url)} has schema revision {revision!r}, newer than "
            f"this Conveyor knows (newest: {head_revision()!r}); upgrade Conveyor to use it"
        )


@contextlib.contextmanager
def _migration_lock(engine: Engine, connection: Connection) -> Iterator[None]:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the newest revision; return (revision before, revision after)."""
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as connection, _migration_lock(engine, connection):
        before = current_revision(connection)
        check_known(before, url)
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current_revision(connection)
    return before, after or head_revision()
