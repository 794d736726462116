"""What one API process holds: the Conveyor app, the job store, the event hub, auth."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from conveyor.api.auth import ANONYMOUS_ADMIN, Authenticator, Principal, RateLimiter
from conveyor.api.hub import EventHub
from conveyor.app import Conveyor
from conveyor.errors import ConveyorError, StoreError
from conveyor.services import apikeys
from conveyor.signing import Signer, load_secret

if TYPE_CHECKING:
    from sqlalchemy import Engine

T = TypeVar("T")

#: Threads for blocking broker calls on the hot path (:meth:`ApiContext.run_blocking`).
#: Each call is mostly CPU under the GIL plus one round trip: a few threads overlap the
#: round trips; more only add GIL hand-offs.
BLOCKING_THREADS = 8


class ApiContext:
    """Long-lived state of one API process, built by :func:`conveyor.api.create_app`."""

    def __init__(self, app: Conveyor, *, auth: bool = True) -> None:
        self.app = app
        self.settings = app.settings
        self.auth = auth
        self.authenticator = Authenticator(self._lookup_key, self.settings.api_key_cache_s)
        self.limiter = RateLimiter(app.redis, self.settings.api_rate_limit)
        self._store: Any = None
        self._store_lock = threading.Lock()
        self.aredis: aioredis.Redis | None = None
        self.hub: EventHub | None = None
        self.registry: Any = None
        self._secret: bytes | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Keys being looked up now, by Authorization header: concurrent requests with a
        # key whose cache entry expired share one lookup.
        self._lookups: dict[str, asyncio.Future[Principal]] = {}

    # ---------------------------------------------------------------- lifespan

    async def start(self) -> None:
        """Connect the async client and start the event hub."""
        self.aredis = aioredis.Redis.from_url(
            self.app.broker_url,
            socket_connect_timeout=self.settings.broker_connect_timeout_s,
            health_check_interval=30,
        )
        self.hub = EventHub(self.aredis)
        await self.hub.start()

    async def stop(self) -> None:
        """Stop the hub, close connections and let the blocking-call threads end."""
        if self.hub is not None:
            await self.hub.stop()
        if self.aredis is not None:
            await self.aredis.aclose()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    async def run_blocking(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on this process's own small thread pool.

        For the hot path's blocking broker calls: cheaper than Starlette's
        ``run_in_threadpool`` (AnyIO's capacity limiter and cancel scopes, and up to
        40 threads contending for the GIL). Context variables are not carried over.
        """
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        BLOCKING_THREADS, thread_name_prefix="conveyor-api"
                    )
                pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    # ------------------------------------------------------------------- store

    def store(self) -> Any:
        """The job store (opened on first use); :class:`StoreError` if it cannot be."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    try:
                        from conveyor.store import open_store
                    except ImportError as exc:
                        raise StoreError(f"the job store is not available: {exc}") from None
                    store = open_store(self.settings)
                    # Idempotent, under the store's migration lock: a fresh install works
                    # whether the API or the recorder starts first.
                    store.upgrade()
                    self._store = store
        return self._store

    def engine(self) -> Engine:
        """The job store's SQLAlchemy engine (API keys live there)."""
        engine = getattr(self.store(), "engine", None)
        if engine is None:
            raise StoreError("the job store exposes no SQL engine")
        return engine  # type: ignore[no-any-return]

    def _lookup_key(self, secret: str) -> apikeys.KeyInfo | None:
        return apikeys.verify_key(self.engine(), secret)

    # -------------------------------------------------------------------- auth

    def signer(self, purpose: str) -> Signer:
        """Signs job tokens and dashboard sessions (see :mod:`conveyor.signing`)."""
        if self._secret is None:
            self._secret = load_secret(self.settings, self.app.redis)
        return Signer(self._secret, purpose)

    def principal(self, authorization: str | None) -> Principal:
        """The caller of a request."""
        if not self.auth:
            return ANONYMOUS_ADMIN
        return self.authenticator.principal(authorization)

    def cached_principal(self, authorization: str | None) -> Principal | None:
        """The caller if it is known without I/O; None: ask :meth:`principal`."""
        if not self.auth:
            return ANONYMOUS_ADMIN
        return self.authenticator.cached(authorization)

    async def principal_async(self, authorization: str | None) -> Principal:
        """:meth:`principal` without blocking the event loop (cache first, else a thread).

        When a busy key's cache entry expires, the requests that arrive during its
        lookup wait for that one lookup instead of each querying the store.
        """
        found = self.cached_principal(authorization)  # raises for a missing or bad header
        if found is not None:
            return found
        header = authorization or ""
        pending = self._lookups.get(header)
        if pending is None:
            pending = asyncio.ensure_future(
                run_in_threadpool(self.authenticator.principal, authorization)
            )
            self._lookups[header] = pending
            pending.add_done_callback(lambda done: self._lookup_done(header, done))
        # Shielded: a caller that goes away does not cancel the others' lookup.
        return await asyncio.shield(pending)

    def _lookup_done(self, header: str, done: asyncio.Future[Principal]) -> None:
        self._lookups.pop(header, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone away

    def check_store(self) -> str | None:
        """None when the store answers, else why not."""
        try:
            store = self.store()
            ping = getattr(store, "ping", None)
            if ping is not None:
                ping()
            else:
                from conveyor.store.db import check_connection

                check_connection(self.engine())
        except ConveyorError as exc:
            return str(exc)
        except Exception as exc:  # a driver error that the store did not wrap
            return f"{type(exc).__name__}: {exc}"
        return None
