"""Choosing the database, reaching it, and its schema version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from conveyor import Settings
from conveyor.errors import StoreError
from conveyor.store import JobStore, open_store
from conveyor.store.db import database_url
from conveyor.store.schema import VERSION_TABLE, head_revision


def test_default_is_sqlite_in_conveyor_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert database_url(settings) == f"sqlite:///{tmp_path.resolve() / 'jobs.db'}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+psycopg://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgres://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_postgres_urls_map_to_psycopg(given: str, expected: str) -> None:
    assert database_url(Settings(database_url=given)) == expected


def test_unknown_scheme_is_refused_with_the_password_masked() -> None:
    with pytest.raises(StoreError) as caught:
        database_url(Settings(database_url="mysql://user:hunter2@db/jobs"))
    assert "mysql://user:***@db/jobs" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_unreachable_server_names_the_url_with_the_password_masked() -> None:
    store = open_store(Settings(database_url="postgresql://user:hunter2@127.0.0.1:1/jobs"))
    with pytest.raises(StoreError) as caught:
        store.upgrade()
    message = str(caught.value)
    assert "postgresql+psycopg://user:***@127.0.0.1:1/jobs" in message
    assert "unreachable" in message and "hunter2" not in message


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(Settings(home=tmp_path))
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10000


def test_upgrade_is_idempotent(store: JobStore) -> None:
    assert store.revision() == head_revision()
    assert store.upgrade() == (head_revision(), head_revision())


def test_a_newer_schema_is_refused(store: JobStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
    for action in (store.upgrade, store.check):
        with pytest.raises(StoreError, match="newer than this Conveyor knows"):
            action()


def test_the_migrations_build_exactly_the_models(store: JobStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from conveyor.store.models import Base

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
