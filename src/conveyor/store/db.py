"""Which database the job store uses, and the engine that reaches it.

The store's URL is ``CONVEYOR_DATABASE_URL``. ``DATABASE_URL`` is often an
application's own database, so it is used only with
``CONVEYOR_STORE_USE_DATABASE_URL=1``; with neither, the store is an SQLite file,
``CONVEYOR_HOME/jobs.db``, in WAL mode (readers never wait for the recorder) with
a busy timeout. PostgreSQL is reached through psycopg 3: ``postgresql+psycopg://``,
``postgresql://`` or ``postgres://``; SQLite as ``sqlite:///path``. Other drivers
(asyncpg, psycopg2, MySQL…) are refused with a message naming these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from conveyor.errors import StoreError
from conveyor.private import private_file
from conveyor.settings import Settings, mask_url

_SCHEMES = {
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
}
SUPPORTED = (
    "postgresql+psycopg://user:password@host:5432/db (also postgresql:// and postgres://, "
    "both through psycopg 3) or sqlite:///path/to/jobs.db"
)


def configured_url(settings: Settings) -> tuple[str, str] | None:
    """The store URL the settings name and the variable it came from; None: the default."""
    if settings.database_url:
        return settings.database_url.strip(), "CONVEYOR_DATABASE_URL"
    if settings.store_use_database_url:
        if not settings.app_database_url:
            raise StoreError("CONVEYOR_STORE_USE_DATABASE_URL is set but DATABASE_URL is not")
        return settings.app_database_url.strip(), "DATABASE_URL"
    return None


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the job store (see the module docstring)."""
    configured = configured_url(settings)
    if configured is None:
        return f"sqlite:///{settings.home_dir / 'jobs.db'}"
    raw, source = configured
    scheme, sep, rest = raw.partition("://")
    driver = _SCHEMES.get(scheme.lower()) if sep else None
    if driver is None:
        dbapi = scheme.partition("+")[2]
        what = f"the driver {dbapi!r}" if dbapi else f"the scheme {scheme!r}"
        raise StoreError(
            f"{source} {mask_url(raw)!r}: {what} is not supported (the job store uses "
            f"synchronous drivers); use {SUPPORTED}"
        )
    return f"{driver}://{rest}"


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` names an SQLite file not created yet (connecting would create it).

    Read-only checks use it to report "no store yet" rather than create an empty one.
    """
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def create_store_engine(url: str, *, busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout. Connects lazily."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"job store URL {mask_url(url)!r} is not valid: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database).expanduser()
            # Before SQLite creates the file (lazily, on first connect): 0600, not 0644.
            event.listen(engine, "do_connect", lambda *_: private_file(path) and None)
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s))
        return engine
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": max(1, int(busy_timeout_s))},
    )


def _sqlite_pragmas(busy_timeout_s: float) -> Any:
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the recorder, nor it them. NORMAL sync is durable
        # across application crashes in WAL mode (only an OS crash may lose the last
        # commits, which the recorder then records again from the stream).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    return on_connect


def check_connection(engine: Engine) -> None:
    """Connect once; :class:`StoreError` naming the (masked) URL if the database is unreachable."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise StoreError(
            f"job store at {mask_url(engine.url.render_as_string(hide_password=False))} "
            f"is unreachable: {first_line(exc.orig)}"
        ) from None


def first_line(error: BaseException | None) -> str:
    """The first line of a database error's message (its type when it has none)."""
    text_ = str(error or "unknown error").strip()
    return text_.splitlines()[0] if text_ else type(error).__name__
