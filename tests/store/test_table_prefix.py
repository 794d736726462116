"""The job store shares a database with an application: prefixed tables, a migration
for stores made before prefixes, and which URL the store takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text
from tests.store.conftest import pg_admin, pg_reachable

from conveyor import Settings
from conveyor.errors import StoreError
from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.store.db import database_url
from conveyor.store.models import DEFAULT_PREFIX, use_prefix
from conveyor.store.schema import _config, head_revision

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
APP_TABLES = (
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, title VARCHAR(50))",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(50))",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    if not pg_reachable():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    name = f"conveyor_prefix_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        pg_admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def prefix_restored() -> Iterator[None]:
    """Tests that switch the process's prefix put the default back."""
    try:
        yield
    finally:
        use_prefix(DEFAULT_PREFIX)


def _run(engine: Engine, *sql: str) -> None:
    with engine.begin() as connection:
        for statement in sql:
            connection.execute(text(statement))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_store_tables_sit_beside_an_applications_own(own_database: str, tmp_path: Path) -> None:
    app_db = create_engine(own_database)
    _run(app_db, *APP_TABLES, "INSERT INTO jobs VALUES (1, 'the app''s job')")
    store = open_store(Settings(database_url=own_database, home=tmp_path))
    try:
        assert store.upgrade() == (None, head_revision())
        apikeys.create_key(store.engine, "acme", ["submit"])
    finally:
        store.close()
    assert {"conveyor_jobs", "conveyor_api_keys", "conveyor_schema_version"} <= _tables(app_db)
    with app_db.connect() as connection:
        assert connection.execute(text("SELECT title FROM jobs")).scalar() == "the app's job"
    app_db.dispose()


def test_no_prefix_is_refused_beside_foreign_tables(
    own_database: str, tmp_path: Path, prefix_restored: None
) -> None:
    app_db = create_engine(own_database)
    _run(app_db, *APP_TABLES[1:])
    store = open_store(Settings(database_url=own_database, home=tmp_path, store_table_prefix=""))
    try:
        with pytest.raises(StoreError, match="holds other tables \\(users\\)"):
            store.upgrade()
    finally:
        store.close()
    assert _tables(app_db) == {"users"}, "nothing was created"
    app_db.dispose()


def test_a_table_of_our_names_not_ours_is_refused(own_database: str, tmp_path: Path) -> None:
    app_db = create_engine(own_database)
    _run(app_db, "CREATE TABLE conveyor_jobs (id INTEGER PRIMARY KEY)")
    store = open_store(Settings(database_url=own_database, home=tmp_path))
    try:
        with pytest.raises(StoreError, match="conveyor_jobs that Conveyor did not create"):
            store.upgrade()
    finally:
        store.close()
    app_db.dispose()


def test_another_prefix_names_every_table(
    own_database: str, tmp_path: Path, prefix_restored: None
) -> None:
    settings = Settings(database_url=own_database, home=tmp_path, store_table_prefix="acme_cv_")
    store = open_store(settings)
    try:
        store.upgrade()
        key = apikeys.create_key(store.engine, "acme", ["read"])
        assert apikeys.verify_key(store.engine, key.secret) is not None
        tables = _tables(store.engine)
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("acme_cv_jobs")}
    finally:
        store.close()
    assert tables == {
        "acme_cv_jobs",
        "acme_cv_dead_letters",
        "acme_cv_batches",
        "acme_cv_api_keys",
        "acme_cv_schema_version",
    }
    assert "ix_acme_cv_jobs_created" in indexes


def test_a_store_made_before_prefixes_is_renamed_in_place(
    own_database: str, tmp_path: Path
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from conveyor.store.models import Base

    legacy = create_engine(own_database)
    with legacy.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")  # the schema as earlier versions made it
    _run(
        legacy,
        "INSERT INTO api_keys (id, tenant, name, key_hash, created_at) "
        "VALUES ('k1', 'acme', 'old key', 'h1', 1.0)",
    )
    assert "jobs" in _tables(legacy)
    store = open_store(Settings(database_url=own_database, home=tmp_path))
    try:
        assert store.upgrade() == ("0001", head_revision())
        [key] = apikeys.list_keys(store.engine)
        assert key.name == "old key" and key.queues is None and key.max_priority == 7
        with store.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": "conveyor_schema_version"}
            )
            assert compare_metadata(context, Base.metadata) == []
        assert "jobs" not in _tables(store.engine)
    finally:
        store.close()
    legacy.dispose()


def test_the_store_url_is_conveyor_database_url_first(tmp_path: Path) -> None:
    app_url = "postgresql://app@db/app"
    default = f"sqlite:///{tmp_path.resolve() / 'jobs.db'}"
    assert database_url(Settings(home=tmp_path, app_database_url=app_url)) == default
    told = Settings(home=tmp_path, app_database_url=app_url, store_use_database_url=True)
    assert database_url(told) == "postgresql+psycopg://app@db/app"
    both = told.model_copy(update={"database_url": "sqlite:////tmp/store.db"})
    assert database_url(both) == "sqlite:////tmp/store.db"
    with pytest.raises(StoreError, match="DATABASE_URL is not"):
        database_url(Settings(home=tmp_path, store_use_database_url=True))


@pytest.mark.parametrize(
    "url", ["postgresql+asyncpg://u:secret@h/db", "postgresql+psycopg2://u:secret@h/db"]
)
def test_unsupported_drivers_are_named_with_the_supported_ones(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        database_url(Settings(database_url=url))
    message = str(caught.value)
    assert "CONVEYOR_DATABASE_URL" in message and "is not supported" in message
    assert "postgresql+psycopg://" in message and "sqlite:///" in message
    assert "secret" not in message
