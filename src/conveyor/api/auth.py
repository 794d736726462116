"""Who is calling: API keys to :class:`Principal`, scopes, and the per-key submit limit.

A request sends ``Authorization: Bearer <key>``. Keys are looked up by their
SHA-256 hash (only the hash is stored) and cached for ``CONVEYOR_API_KEY_CACHE_S``
seconds, so a revocation takes effect within that time. With auth off (only
allowed on a loopback bind) every request acts as an admin without a tenant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from conveyor import keys
from conveyor.errors import PermissionDenied, RateLimited, Unauthenticated
from conveyor.services import apikeys
from conveyor.settings import parse_rate

SCOPES = ("submit", "read", "admin")


@dataclass(frozen=True)
class Principal:
    """The caller: its key, tenant and scopes. ``admin`` sees every tenant."""

    key_id: str | None
    tenant: str | None
    scopes: frozenset[str]
    #: Queues it may name besides each job type's own (None: every queue, auth off).
    queues: frozenset[str] | None = None
    #: The highest priority it may ask for.
    max_priority: int = 10

    @property
    def admin(self) -> bool:
        """Whether this caller may see every tenant and use admin actions."""
        return "admin" in self.scopes

    def holds(self, scope: str) -> bool:
        """Whether the caller holds ``scope`` (admin holds all)."""
        return scope in self.scopes or self.admin

    def require(self, scope: str) -> None:
        """Raise :class:`PermissionDenied` unless the caller holds ``scope`` (admin holds all)."""
        if not self.holds(scope):
            raise PermissionDenied(f"this API key lacks the {scope!r} scope")

    def sees(self, tenant: str | None) -> bool:
        """Whether a job, batch or dead letter of ``tenant`` is visible to this caller."""
        return self.admin or (self.tenant is not None and tenant == self.tenant)

    def tenant_filter(self) -> str | None:
        """The tenant to filter listings by (None: every tenant, for admins)."""
        return None if self.admin else self.tenant


#: The caller when auth is off (loopback only).
ANONYMOUS_ADMIN = Principal(key_id=None, tenant=None, scopes=frozenset(SCOPES))


class Authenticator:
    """Resolves bearer tokens to principals through a short cache."""

    def __init__(self, lookup: Callable[[str], apikeys.KeyInfo | None], cache_s: float) -> None:
        self._lookup = lookup
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal if the key is in the cache (no I/O); None means: call :meth:`principal`."""
        entry = self._fresh(apikeys.hash_key(_token(authorization)), time.monotonic())
        return None if entry is None else _known(entry[1])

    def principal(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header, or :class:`Unauthenticated`."""
        token = _token(authorization)
        digest = apikeys.hash_key(token)
        now = time.monotonic()
        entry = self._fresh(digest, now)
        if entry is not None:
            return _known(entry[1])
        info = self._lookup(token)
        found = None
        if info is not None:
            found = Principal(
                info.id,
                info.tenant,
                frozenset(info.scopes),
                queues=frozenset(info.queues or ()),
                max_priority=info.max_priority,
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_s, found)
        return _known(found)

    def _fresh(self, digest: str, now: float) -> tuple[float, Principal | None] | None:
        """The cache entry for ``digest`` unless it is missing or expired."""
        entry = self._cache.get(digest)
        if entry is None or entry[0] <= now:
            return None
        return entry


def _known(found: Principal | None) -> Principal:
    """``found``, or :class:`Unauthenticated` for a key cached as unknown."""
    if found is None:
        raise Unauthenticated("unknown or revoked API key")
    return found


def _token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <key>'")
    return token


class RateLimiter:
    """A fixed-window counter per key in Redis, so every API process shares the limit."""

    def __init__(self, client: redis.Redis, rate: str) -> None:
        self.client = client
        self.rule = parse_rate(rate)

    def hit(self, key_id: str | None, cost: int = 1) -> None:
        """Count ``cost`` submissions for ``key_id``; :class:`RateLimited` past the limit."""
        if self.rule is None or key_id is None:
            return
        limit, window = self.rule
        now = time.time()
        slot = int(now // window)
        name = keys.api_rate(key_id, slot)
        pipe = self.client.pipeline(transaction=False)
        pipe.incrby(name, cost)
        pipe.expire(name, int(window) + 1)
        count = int(pipe.execute()[0])
        if count > limit:
            retry_after = (slot + 1) * window - now
            raise RateLimited(
                f"rate limit of {limit} submissions per {window:g}s exceeded for this key",
                retry_after_s=retry_after,
            )
