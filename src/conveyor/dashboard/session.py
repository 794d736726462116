"""Dashboard sign-in: an API key exchanged for a signed session cookie, and CSRF checks.

The cookie carries the key's id (never its secret), the tenant an admin is viewing,
and the session's CSRF token, signed by :mod:`conveyor.signing`. Each request checks
the key again (through a short cache), so a revoked key's sessions end within
``CONVEYOR_API_KEY_CACHE_S``. Every form that changes something carries the CSRF
token, compared in constant time; the cookie is ``HttpOnly`` and ``SameSite=Strict``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from conveyor.api.auth import ANONYMOUS_ADMIN, Principal
from conveyor.api.context import ApiContext
from conveyor.errors import PermissionDenied, Unauthenticated
from conveyor.services import apikeys

COOKIE = "conveyor_session"
PURPOSE = "cvsess"


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the dashboard, and which tenant's jobs they look at."""

    principal: Principal
    #: The tenant whose jobs are listed (an admin's choice; None: every tenant).
    tenant: str | None
    csrf: str
    name: str

    @property
    def admin(self) -> bool:
        """Whether action buttons are shown and actions allowed."""
        return self.principal.admin

    def sees(self, tenant: str | None) -> bool:
        """Whether a job, dead letter or batch of ``tenant`` may be shown."""
        return self.principal.sees(tenant)

    def require_admin(self) -> None:
        """:class:`PermissionDenied` unless this viewer may act."""
        self.principal.require("admin")

    def check_csrf(self, token: str | None) -> None:
        """:class:`PermissionDenied` unless ``token`` is this session's CSRF token."""
        if not token or not hmac.compare_digest(token, self.csrf):
            raise PermissionDenied("the form's CSRF token does not match this session")


class Sessions:
    """Signs sessions and turns session cookies back into viewers."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[float, apikeys.KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def sign_in(self, api_key: str) -> str:
        """A session cookie value for ``api_key``; :class:`Unauthenticated` if it is no key."""
        if not self.ctx.auth:
            return self._cookie(None, None)
        principal = self.ctx.principal(f"Bearer {api_key.strip()}")
        principal.require("read")
        return self._cookie(principal.key_id, None)

    def switch_tenant(self, viewer: Viewer, tenant: str | None) -> str:
        """A new cookie value for an admin viewing ``tenant`` (None: every tenant)."""
        viewer.require_admin()
        return self._cookie(viewer.principal.key_id, tenant or None, viewer.csrf)

    def _cookie(self, key_id: str | None, tenant: str | None, csrf: str | None = None) -> str:
        claims = {"k": key_id, "t": tenant, "c": csrf or secrets.token_urlsafe(24)}
        return self.ctx.signer(PURPOSE).sign(claims, self.ctx.settings.dashboard_session_s)

    def viewer(self, cookie: str | None) -> Viewer:
        """The viewer of a session cookie; :class:`Unauthenticated` when there is none."""
        if not cookie:
            raise Unauthenticated("sign in with an API key")
        claims = self.ctx.signer(PURPOSE).verify(cookie)
        key_id, csrf = claims.get("k"), str(claims.get("c") or "")
        if not self.ctx.auth:
            return Viewer(ANONYMOUS_ADMIN, claims.get("t"), csrf, "local (auth off)")
        if not isinstance(key_id, str):
            raise Unauthenticated("this session belongs to a server without auth")
        info = self._key(key_id)
        if info is None or info.revoked_at is not None:
            raise Unauthenticated("the API key of this session was revoked")
        principal = Principal(info.id, info.tenant, frozenset(info.scopes))
        tenant = claims.get("t") if principal.admin else info.tenant
        return Viewer(principal, tenant, csrf, info.name)

    def _key(self, key_id: str) -> apikeys.KeyInfo | None:
        now = time.monotonic()
        entry = self._cache.get(key_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        info = apikeys.get_key(self.ctx.engine(), key_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now + self.ctx.settings.api_key_cache_s, info)
        return info
