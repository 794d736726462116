"""What one API process holds: the Conveyor app, the job store, the event hub, auth."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from conveyor import apikeys
from conveyor.api.auth import ANONYMOUS_ADMIN, Authenticator, Principal, RateLimiter
from conveyor.api.hub import EventHub
from conveyor.app import Conveyor
from conveyor.errors import ConveyorError, StoreError
from conveyor.signing import Signer, load_secret

if TYPE_CHECKING:
    from sqlalchemy import Engine


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
        """Stop the hub and close connections."""
        if self.hub is not None:
            await self.hub.stop()
        if self.aredis is not None:
            await self.aredis.aclose()

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
        """:meth:`principal` without blocking the event loop (cache first, else a thread)."""
        found = self.cached_principal(authorization)
        if found is not None:
            return found
        return await run_in_threadpool(self.authenticator.principal, authorization)

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
