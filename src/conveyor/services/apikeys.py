"""API keys: created once (the secret is shown only then), stored as a SHA-256 hash.

A key looks like ``cvk_<id>_<secret>``; the id part lets ``conveyor keys revoke``
name a key without its secret. Rows live in the job store's ``api_keys`` table.

A key also says where it may submit: the queues it may name besides each job
type's own (none by default) and the highest priority it may ask for (7 by
default: 8–10 are for keys created for them). Internal queues (dead letters,
monitoring) are never open to API submissions, whatever the key.
SHA-256 without salt is enough here: the secret is 256 random bits, so there is
nothing to guess — a slow hash protects low-entropy passwords, not random tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from conveyor.errors import InvalidSubmission, NotFound, StoreError
from conveyor.store.models import ApiKeyRow

SCOPES = ("submit", "read", "admin")
PREFIX = "cvk_"
#: The highest priority a key may use unless it was created with another.
DEFAULT_MAX_PRIORITY = 7


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed (never with its secret)."""

    id: str
    tenant: str | None
    name: str
    scopes: list[str]
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    #: Queues the key may name besides each job type's own (None: only the type's own).
    queues: list[str] | None = None
    max_priority: int = DEFAULT_MAX_PRIORITY


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``secret`` is the only time the full key is available."""

    info: KeyInfo
    secret: str = field(repr=False)


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, validated and de-duplicated; :class:`InvalidSubmission` on an unknown one."""
    chosen = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise InvalidSubmission(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)} (got {', '.join(unknown)})"
        )
    return chosen


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        scopes=list(row.scopes or []),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        queues=list(row.queues) if row.queues is not None else None,
        max_priority=DEFAULT_MAX_PRIORITY if row.max_priority is None else row.max_priority,
    )


def create_key(
    engine: Engine,
    tenant: str,
    scopes: Iterable[str],
    name: str = "",
    *,
    queues: Iterable[str] | None = None,
    max_priority: int = DEFAULT_MAX_PRIORITY,
) -> NewKey:
    """Create a key for ``tenant`` with ``scopes``; the result holds the secret once.

    ``queues`` are the queues it may name besides each job type's own (check them
    against the topology first: :func:`conveyor.api.submitpolicy.check_key_queues`);
    ``max_priority`` the highest priority it may ask for (0–10).
    """
    tenant = tenant.strip()
    if not tenant or len(tenant) > 200:
        raise InvalidSubmission("tenant must be 1–200 characters")
    if isinstance(max_priority, bool) or not 0 <= max_priority <= 10:
        raise InvalidSubmission(f"max priority must be 0–10 (got {max_priority!r})")
    allowed = sorted({q.strip() for q in queues if q.strip()}) if queues is not None else None
    chosen = check_scopes(scopes)
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        id=key_id,
        tenant=tenant,
        name=name or f"{tenant} key",
        key_hash=hash_key(secret),
        scopes=chosen,
        created_at=time.time(),
        queues=allowed or None,
        max_priority=max_priority,
    )
    info = _info(row)
    try:
        with Session(engine) as session, session.begin():
            session.add(row)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not store the API key: {exc}") from None
    return NewKey(info=info, secret=secret)


def list_keys(engine: Engine, tenant: str | None = None) -> list[KeyInfo]:
    """Every key (or one tenant's), oldest first."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    try:
        with Session(engine) as session:
            return [_info(row) for row in session.scalars(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read API keys: {exc}") from None


def revoke_key(engine: Engine, key_id: str) -> KeyInfo:
    """Revoke a key by id (or by the full key); :class:`NotFound` if there is none."""
    if key_id.startswith(PREFIX):
        key_id = key_id[len(PREFIX) :].split("_", 1)[0]
    try:
        with Session(engine) as session, session.begin():
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = time.time()
            return _info(row)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not revoke the API key: {exc}") from None


def verify_key(engine: Engine, secret: str) -> KeyInfo | None:
    """The key's info if ``secret`` is a live (not revoked) key, else None."""
    if not secret.startswith(PREFIX):
        return None
    digest = hash_key(secret)
    try:
        with Session(engine) as session, session.begin():
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).first()
            if row is None or row.revoked_at is not None:
                return None
            now = time.time()
            if row.last_used_at is None or now - row.last_used_at > 60:
                session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now)
                )
            return _info(row)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not check the API key: {exc}") from None


def get_key(engine: Engine, key_id: str) -> KeyInfo | None:
    """A key's info by id, or None; a revoked key is returned with ``revoked_at`` set."""
    try:
        with Session(engine) as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _info(row)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the API key: {exc}") from None
