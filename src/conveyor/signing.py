"""Short-lived signed claims: per-job read tokens and dashboard sessions.

A token is ``<purpose>.<payload>.<mac>``: the payload is URL-safe base64 JSON
holding the claims and an expiry (``exp``, unix seconds); the MAC is HMAC-SHA256
over the purpose and the payload. The purpose is part of what is signed, so a
dashboard session can never pass for a job token, nor the reverse.

The secret is ``CONVEYOR_SECRET_KEY`` when set; otherwise 32 random bytes kept in
the broker (created once with ``SET NX``), so every API process on one broker
accepts what any of them signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import redis

from conveyor import keys
from conveyor.errors import Unauthenticated
from conveyor.settings import Settings


def load_secret(settings: Settings, client: redis.Redis) -> bytes:
    """The signing secret: the configured one, else the broker's (created on first use)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    client.set(keys.SIGNING_SECRET, secrets.token_hex(32), nx=True)
    stored: Any = client.get(keys.SIGNING_SECRET)
    if not stored:
        raise RuntimeError(f"{keys.SIGNING_SECRET} vanished right after it was set")
    return stored if isinstance(stored, bytes) else str(stored).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks claims for one ``purpose`` (``job``, ``session``)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._secret = secret
        self.purpose = purpose

    def _mac(self, payload: str) -> str:
        message = f"{self.purpose}.{payload}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def sign(self, claims: dict[str, Any], ttl_s: float, now: float | None = None) -> str:
        """A token carrying ``claims`` that expires ``ttl_s`` seconds from ``now``."""
        expires = (time.time() if now is None else now) + ttl_s
        body = json.dumps({**claims, "exp": round(expires, 3)}, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{self.purpose}.{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The claims of a genuine, unexpired token; :class:`Unauthenticated` otherwise."""
        purpose, _, rest = token.partition(".")
        payload, _, mac = rest.partition(".")
        if purpose != self.purpose or not payload or not mac:
            raise Unauthenticated(f"not a {self.purpose} token")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise Unauthenticated(f"{self.purpose} token has a bad signature")
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            raise Unauthenticated(f"malformed {self.purpose} token") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
            raise Unauthenticated(f"malformed {self.purpose} token")
        if claims["exp"] <= (time.time() if now is None else now):
            raise Unauthenticated(f"{self.purpose} token expired")
        return claims
