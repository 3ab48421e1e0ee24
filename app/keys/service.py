"""API keys: secrets shown once, rotation, revocation, caps, and finding a key by secret.

A secret is ``<prefix>-<id>-<random>`` (``sk-1a2b3c4d-...``; the prefix is configurable,
ByteSpike's is ``sk-byts``) with 256 random bits; only its SHA-256 is stored
(a fast unsalted hash is enough for a random secret of that size, and keeps the lookup
on the hot path to one dictionary read). When a key encryption key is configured the
secret is also kept encrypted (Fernet), so an owner can reveal it again; each reveal is
recorded in the audit log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import audit
from app.db import table
from app.ids import to_global_id
from app.keys.tables import ApiKey
from app.webhooks import outbox
from app.webhooks.tables import EventType

keys_t = table(ApiKey)


class UnknownKey(LookupError):
    """No such key in the caller's organization."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(visible: str) -> tuple[str, str]:
    """A fresh secret starting with ``visible`` and its public start (``visible-<id>``)."""
    prefix = f"{visible}-{secrets.token_hex(4)}"
    return f"{prefix}-{secrets.token_urlsafe(32)}", prefix


@dataclass(frozen=True, slots=True)
class Caps:
    """A key's caps in credits; None (or 0, normalised to None) means no cap."""

    quota: int | None = None
    limit_5h: int | None = None
    limit_1d: int | None = None
    limit_7d: int | None = None

    def columns(self) -> dict[str, int | None]:
        return {
            "quota": self.quota or None,
            "limit_5h": self.limit_5h or None,
            "limit_1d": self.limit_1d or None,
            "limit_7d": self.limit_7d or None,
        }


NO_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: int
    secret: str
    prefix: str


class KeyVault:
    """Makes secrets with the configured prefix, and encrypts them for reveal when a key
    encryption key is configured."""

    def __init__(self, key_encryption_key: str | None, *, secret_prefix: str) -> None:
        self._fernet = Fernet(key_encryption_key.encode()) if key_encryption_key else None
        self.secret_prefix = secret_prefix

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str | None:
        return self._fernet.encrypt(secret.encode()).decode() if self._fernet else None

    def open(self, token: str) -> str:
        assert self._fernet is not None
        return self._fernet.decrypt(token.encode()).decode()


async def create_key(
    conn: AsyncConnection,
    vault: KeyVault,
    *,
    organization_id: int,
    name: str,
    actor: str,
    now: datetime,
    group: str = "default",
    owner: str | None = None,
    caps: Caps = NO_CAPS,
    expires_in_days: int | None = None,
) -> CreatedKey:
    secret, prefix = new_secret(vault.secret_prefix)
    values: dict[str, Any] = {
        "organization_id": organization_id,
        "name": name,
        "prefix": prefix,
        "secret_hash": hash_secret(secret),
        "secret_encrypted": vault.seal(secret),
        "group": group,
        "owner": owner,
        "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None,
        "created_at": now,
        **caps.columns(),
    }
    key_id = await conn.scalar(insert(keys_t).values(**values).returning(keys_t.c.id))
    assert key_id is not None
    created = {"apiKey": _event_key(key_id, name, prefix, group) | {"owner": owner}}
    await outbox.record_async(conn, organization_id, EventType.API_KEY_CREATED, created, now)
    await _audit(
        conn,
        "api_key.create",
        organization_id=organization_id,
        key_id=key_id,
        actor=actor,
        now=now,
        after=_public(values),
    )
    return CreatedKey(key_id, secret, prefix)


async def get_key(conn: AsyncConnection, organization_id: int, key_id: int) -> Any:
    """The key's row, if it is the organization's; else UnknownKey."""
    row = (
        await conn.execute(
            select(keys_t).where(keys_t.c.id == key_id, keys_t.c.organization_id == organization_id)
        )
    ).first()
    if row is None:
        raise UnknownKey(f"no API key {key_id}")
    return row


async def rotate_key(
    conn: AsyncConnection,
    vault: KeyVault,
    *,
    organization_id: int,
    key_id: int,
    actor: str,
    now: datetime,
) -> CreatedKey:
    """Replace the secret; the old one stops working at once. Caps and spend stay."""
    row = await get_key(conn, organization_id, key_id)
    secret, prefix = new_secret(vault.secret_prefix)
    await conn.execute(
        update(keys_t)
        .where(keys_t.c.id == key_id)
        .values(prefix=prefix, secret_hash=hash_secret(secret), secret_encrypted=vault.seal(secret))
    )
    await _audit(
        conn,
        "api_key.rotate",
        organization_id=organization_id,
        key_id=key_id,
        actor=actor,
        now=now,
        before={"prefix": row.prefix},
        after={"prefix": prefix},
    )
    return CreatedKey(key_id, secret, prefix)


async def revoke_key(
    conn: AsyncConnection, *, organization_id: int, key_id: int, actor: str, now: datetime
) -> None:
    row = await get_key(conn, organization_id, key_id)
    if row.revoked_at is not None:
        return
    await conn.execute(update(keys_t).where(keys_t.c.id == key_id).values(revoked_at=now))
    revoked = {"apiKey": _event_key(key_id, row.name, row.prefix, row.group)}
    await outbox.record_async(conn, organization_id, EventType.API_KEY_REVOKED, revoked, now)
    await _audit(
        conn,
        "api_key.revoke",
        organization_id=organization_id,
        key_id=key_id,
        actor=actor,
        now=now,
        before={"revoked_at": None},
        after={"revoked_at": now.isoformat()},
    )


async def set_caps(
    conn: AsyncConnection,
    *,
    organization_id: int,
    key_id: int,
    caps: Caps,
    actor: str,
    now: datetime,
) -> None:
    row = await get_key(conn, organization_id, key_id)
    after = caps.columns()
    before = {column: getattr(row, column) for column in after}
    await conn.execute(update(keys_t).where(keys_t.c.id == key_id).values(**after))
    await _audit(
        conn,
        "api_key.caps",
        organization_id=organization_id,
        key_id=key_id,
        actor=actor,
        now=now,
        before=before,
        after=after,
    )


async def reveal_key(
    conn: AsyncConnection,
    vault: KeyVault,
    *,
    organization_id: int,
    key_id: int,
    actor: str,
    now: datetime,
) -> str | None:
    """The secret again (owners only; the caller checks the role), or None if not kept."""
    row = await get_key(conn, organization_id, key_id)
    if not vault.enabled or row.secret_encrypted is None:
        return None
    await _audit(
        conn,
        "api_key.reveal",
        organization_id=organization_id,
        key_id=key_id,
        actor=actor,
        now=now,
    )
    return vault.open(row.secret_encrypted)


def _event_key(key_id: int, name: str, prefix: str, group: str) -> dict[str, Any]:
    """A key as webhook events show it: never its secret."""
    return {"id": to_global_id("ApiKey", key_id), "name": name, "prefix": prefix, "group": group}


async def _audit(
    conn: AsyncConnection,
    action: str,
    *,
    organization_id: int,
    key_id: int,
    actor: str,
    now: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await audit.record(
        conn,
        organization_id=organization_id,
        actor=actor,
        action=action,
        target=f"api_key:{key_id}",
        at=now,
        before=before,
        after=after,
    )


def _public(values: dict[str, Any]) -> dict[str, Any]:
    hidden = {"secret_hash", "secret_encrypted", "created_at"}
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in values.items()
        if k not in hidden
    }


@dataclass(frozen=True, slots=True)
class KeyRef:
    id: int
    organization_id: int
    secret_hash: str


class KeyDirectory:
    """Secret to key, cached by hash. The writer re-checks the hash, status and caps
    against the locked row, so a rotated or revoked key cannot spend from the cache."""

    MAX_ENTRIES = 100_000

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._by_hash: dict[str, KeyRef] = {}

    async def find(self, secret: str) -> KeyRef | None:
        if not secret.startswith("sk-") or len(secret) > 200:
            return None
        digest = hash_secret(secret)
        ref = self._by_hash.get(digest)
        if ref is None:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(keys_t.c.id, keys_t.c.organization_id).where(
                            keys_t.c.secret_hash == digest
                        )
                    )
                ).first()
            if row is None:
                return None
            if len(self._by_hash) >= self.MAX_ENTRIES:
                self._by_hash.clear()
            ref = self._by_hash[digest] = KeyRef(row.id, row.organization_id, digest)
        return ref
