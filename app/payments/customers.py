"""An organization's billing account, and its customer at the payment provider: one
definition for top-ups (``app.payments.service``) and plan subscriptions
(``app.plans.service``)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database, is_postgres
from app.ledger.state import accounts_t, orgs_t
from app.payments.provider import PaymentProvider


async def ensure_account(conn: AsyncConnection, organization_id: int) -> None:
    """The organization's billing account, with the defaults, unless it has one."""
    statement = (postgresql.insert if is_postgres(conn) else sqlite.insert)(accounts_t)
    await conn.execute(statement.values(organization_id=organization_id).on_conflict_do_nothing())


async def provider_customer(db: Database, provider: PaymentProvider, organization_id: int) -> str:
    """The organization's customer at the provider, created on its first payment."""
    async with db.reader.connect() as conn:
        existing = await conn.scalar(
            select(accounts_t.c.customer_id).where(accounts_t.c.organization_id == organization_id)
        )
        name = await conn.scalar(select(orgs_t.c.name).where(orgs_t.c.id == organization_id))
    if existing:
        return str(existing)
    # The idempotency key makes a second, racing creation return the same customer.
    customer_id = await provider.create_customer(
        organization_id=organization_id, name=name or str(organization_id)
    )
    async with db.write(organization_id) as conn:
        await ensure_account(conn, organization_id)
        await conn.execute(
            update(accounts_t)
            .where(accounts_t.c.organization_id == organization_id)
            .values(customer_id=customer_id)
        )
    return customer_id
