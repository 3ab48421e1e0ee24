"""API key lifecycle: secrets shown once, reveal only with an encryption key, rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.audit import audit_t
from app.db import table
from app.keys import service
from app.keys.service import Caps, KeyVault
from app.keys.tables import ApiKey
from tests.conftest import Harness

keys_t = table(ApiKey)


async def test_secret_is_stored_hashed_and_revealed_only_with_a_vault(harness: Harness) -> None:
    org = await harness.org()
    vault = KeyVault(Fernet.generate_key().decode(), secret_prefix="sk")
    rt = harness.runtime
    async with rt.db.write(None) as conn:
        created = await service.create_key(
            conn, vault, organization_id=org.id, name="k", actor="owner@test", now=rt.clock.now()
        )
    assert created.secret.startswith(f"{created.prefix}-")
    async with rt.db.write(None) as conn:
        row = (await conn.execute(select(keys_t).where(keys_t.c.id == created.id))).one()
        assert row.secret_hash == service.hash_secret(created.secret)
        assert created.secret not in (row.secret_encrypted or "")
        revealed = await service.reveal_key(
            conn,
            vault,
            organization_id=org.id,
            key_id=created.id,
            actor="owner@test",
            now=rt.clock.now(),
        )
        assert revealed == created.secret
        # Without the encryption key there is nothing to reveal.
        assert (
            await service.reveal_key(
                conn,
                KeyVault(None, secret_prefix="sk"),
                organization_id=org.id,
                key_id=created.id,
                actor="owner@test",
                now=rt.clock.now(),
            )
            is None
        )
        actions = (
            (await conn.execute(select(audit_t.c.action).order_by(audit_t.c.id))).scalars().all()
        )
    assert actions[-2:] == ["api_key.create", "api_key.reveal"]


async def test_rotation_retires_the_old_secret_at_once(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    assert (await harness.authorize(key, "before")).status_code == 200
    rt = harness.runtime
    async with rt.db.write(None) as conn:
        rotated = await service.rotate_key(
            conn, rt.vault, organization_id=org.id, key_id=key.id, actor="t", now=rt.clock.now()
        )
    old = await harness.authorize(key, "after-old")
    assert old.status_code == 401
    assert (await harness.authorize(rotated, "after-new")).status_code == 200


async def test_other_organizations_keys_are_not_found(harness: Harness) -> None:
    mine, theirs = await harness.org("mine"), await harness.org("theirs")
    key = await harness.key(theirs)
    rt = harness.runtime
    async with rt.db.write(None) as conn:
        with pytest.raises(service.UnknownKey):
            await service.revoke_key(
                conn, organization_id=mine.id, key_id=key.id, actor="t", now=rt.clock.now()
            )
    assert (await harness.authorize(key, "still-works")).status_code == 402  # empty wallet


async def test_zero_caps_mean_no_cap(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org, caps=Caps(quota=500))
    rt = harness.runtime
    async with rt.db.write(None) as conn:
        await service.set_caps(
            conn,
            organization_id=org.id,
            key_id=key.id,
            caps=Caps(quota=0, limit_1d=0),
            actor="t",
            now=rt.clock.now(),
        )
        row = (await conn.execute(select(keys_t).where(keys_t.c.id == key.id))).one()
    assert (row.quota, row.limit_1d) == (None, None)
    assert (await harness.authorize(key, "big", hold_usd="0.9")).status_code == 200
