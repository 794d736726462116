"""Schema migrations (Alembic), run from the package: no ``alembic.ini`` to ship.

:func:`upgrade` brings a database to the newest revision this code knows. A database
whose revision this code does not know (written by a newer Conveyor) is refused with
a clear :class:`~conveyor.errors.StoreError` rather than being used or altered.
Concurrent upgrades (two recorders starting at once) are serialised: PostgreSQL by
an advisory lock, SQLite by a lock file beside the database.

An empty database gets the current tables at once (``create_all``, then stamped at
the newest revision); the migrations carry stores made by earlier versions forward.
Tables are never created beside foreign ones that could collide: with an empty
table prefix the database must hold no other tables, and a table of Conveyor's
names that Conveyor did not create stops the upgrade with a message.
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
from sqlalchemy import Connection, Engine, inspect, text

from conveyor.errors import StoreError
from conveyor.private import private_file
from conveyor.settings import mask_url
from conveyor.store import models
from conveyor.store.models import DEFAULT_PREFIX

MIGRATIONS = Path(__file__).with_name("migrations")
#: The version table with the default prefix (and with none: stores made before prefixes).
VERSION_TABLE = "conveyor_schema_version"


def version_table() -> str:
    """Where this process's store keeps its schema revision (``<prefix>schema_version``)."""
    return f"{models.table_prefix() or DEFAULT_PREFIX}schema_version"


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
    context = MigrationContext.configure(connection, opts={"version_table": version_table()})
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
    with open(private_file(Path(f"{database}.migrate.lock")), "a+b") as handle:
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
        if before is None:
            _check_no_collision(connection, url)
            models.Base.metadata.create_all(connection)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
        after = current_revision(connection)
    return before, after or head_revision()


def _check_no_collision(connection: Connection, url: str) -> None:
    """:class:`StoreError` unless the store's tables can be created without touching others."""
    tables = set(inspect(connection).get_table_names())
    ours = {table.name for table in models.Base.metadata.tables.values()}
    taken = sorted(tables & ours)
    if taken:
        raise StoreError(
            f"the database at {mask_url(url)} already has table(s) {', '.join(taken)} that "
            "Conveyor did not create; set CONVEYOR_STORE_TABLE_PREFIX to another prefix"
        )
    foreign = sorted(tables - ours - {version_table()})
    if foreign and not models.table_prefix():
        raise StoreError(
            f"the database at {mask_url(url)} holds other tables ({', '.join(foreign[:5])}"
            f"{' …' if len(foreign) > 5 else ''}); Conveyor creates its tables beside an "
            "application's only with a prefix: unset CONVEYOR_STORE_TABLE_PREFIX (default "
            f"{DEFAULT_PREFIX!r}) or give the store its own database"
        )
