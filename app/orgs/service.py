"""Creating organizations and finding them by slug."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import audit
from app.db import table
from app.ledger.tables import Wallet
from app.orgs.tables import Organization

orgs_t = table(Organization)
wallets_t = table(Wallet)
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class OrgError(ValueError):
    """An organization that cannot be created as asked."""


@dataclass(frozen=True, slots=True)
class OrgRef:
    id: int
    slug: str
    name: str


async def create_org(
    conn: AsyncConnection,
    *,
    slug: str,
    name: str | None,
    now: datetime,
    rate_card: str = "standard",
) -> OrgRef:
    """Create an organization and its (empty) wallet, billed by ``rate_card``."""
    if not SLUG.fullmatch(slug):
        raise OrgError(f"slug {slug!r} must be lowercase letters, digits and dashes")
    existing = await conn.scalar(select(orgs_t.c.id).where(orgs_t.c.slug == slug))
    if existing is not None:
        raise OrgError(f"organization {slug!r} exists")
    name = name or slug
    org_id = await conn.scalar(
        insert(orgs_t)
        .values(slug=slug, name=name, rate_card=rate_card, created_at=now)
        .returning(orgs_t.c.id)
    )
    assert org_id is not None
    await conn.execute(insert(wallets_t).values(organization_id=org_id))
    return OrgRef(org_id, slug, name)


async def set_spend_cap(
    conn: AsyncConnection,
    *,
    organization_id: int,
    monthly_limit: int | None,
    actor: str,
    now: datetime,
) -> None:
    """Set the monthly spend cap in credits (None: no cap), recorded in the audit log.

    Nothing caches it: the writer reads it with the wallet in every transaction.
    """
    where = orgs_t.c.id == organization_id
    before = await conn.scalar(select(orgs_t.c.spend_cap_monthly).where(where))
    await conn.execute(update(orgs_t).where(where).values(spend_cap_monthly=monthly_limit))
    await audit.record(
        conn,
        organization_id=organization_id,
        actor=actor,
        action="organization.spend_cap",
        target=f"organization:{organization_id}",
        at=now,
        before={"spend_cap_monthly": before},
        after={"spend_cap_monthly": monthly_limit},
    )


class OrgDirectory:
    """Organizations by slug and id, cached: every request names its organization."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._by_slug: dict[str, OrgRef] = {}
        self._by_id: dict[int, OrgRef] = {}

    async def by_slug(self, slug: str) -> OrgRef | None:
        org = self._by_slug.get(slug)
        return org if org is not None else await self._load(orgs_t.c.slug == slug)

    def known(self, organization_id: int) -> OrgRef | None:
        """The organization if it is cached (a request's caller's always is)."""
        return self._by_id.get(organization_id)

    async def by_id(self, organization_id: int) -> OrgRef:
        org = self._by_id.get(organization_id)
        if org is None:
            org = await self._load(orgs_t.c.id == organization_id)
            assert org is not None, "organizations are never deleted"
        return org

    async def _load(self, where: ColumnElement[bool]) -> OrgRef | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orgs_t.c.id, orgs_t.c.slug, orgs_t.c.name).where(where))
            ).first()
        if row is None:
            return None
        org = OrgRef(row.id, row.slug, row.name)
        self._by_slug[org.slug] = self._by_id[org.id] = org
        return org
