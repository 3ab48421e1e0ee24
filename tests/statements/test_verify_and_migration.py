"""``creditgraph verify`` finds a payment without its receipt, receipts numbered with a
gap and a statement whose usage does not add up; migration 0014 issues the receipts of
payments made before it, numbered as they would have been."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.clock import Clock
from app.ledger.state import next_month
from app.ledger.verify import verify
from app.migrate import alembic_config
from app.settings import Settings
from app.statements.figures import Month
from app.statements.receipts import receipts_t
from app.usage.rollups import daily_t
from tests.conftest import Harness, running_app, usage_event
from tests.payments.test_auto_reload import fake_top_up
from tests.statements.test_receipts import receipts, refund


async def test_verify_finds_missing_receipts_gaps_and_usage_that_does_not_add_up(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    for amount in ("5", "6", "7"):
        await fake_top_up(harness, org, amount)
    await harness.usage(org, usage_event(key.id, "r1"))
    assert await harness.books() == []
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(delete(receipts_t).where(receipts_t.c.sequence == 2))
        await conn.execute(update(daily_t).values(spend=daily_t.c.spend + 1))
    problems = await harness.books()
    assert any("has no receipt" in p for p in problems), problems
    assert f"organization {org.id}: 2 receipts numbered up to 3" in problems
    # Once the month has closed, its statement is checked too.
    async with harness.runtime.db.reader.connect() as conn:
        problems = await verify(conn, next_month(harness.runtime.clock.now()))
    month = Month.of(harness.runtime.clock.now())
    assert any(
        p.startswith(f"organization {org.id}: statement {month}: usage by model and action")
        for p in problems
    ), problems


def _migrate(conn: Connection, direction: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    getattr(command, direction)(config, revision)


def _receipts(conn: Connection) -> list[tuple[Any, ...]]:
    """What a receipt says but the card, which payments before 0014 did not keep."""
    r = receipts_t.c
    columns = (r.number, r.kind, r.transaction_id, r.amount, r.credits, r.bonus, r.issued_at)
    rows = conn.execute(select(*columns, r.refund_of_id.is_not(None)).order_by(r.number))
    return [tuple(row) for row in rows]


async def test_migration_issues_the_receipts_of_earlier_payments(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    async with running_app(settings, clock) as harness:
        org = await harness.org("acme")
        await fake_top_up(harness, org, "99.99")
        await fake_top_up(harness, await harness.org("beta"), "5")
        await fake_top_up(harness, org, "20")
        (paid, _) = await receipts(harness, org)
        await refund(harness, org, paid["transaction"]["id"], "12.34")
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            issued = await conn.run_sync(_receipts)
            assert len(issued) == 4
            await conn.run_sync(_migrate, "downgrade", "0011")
            await conn.run_sync(_migrate, "upgrade", "head")
            assert await conn.run_sync(_receipts) == issued
    finally:
        await engine.dispose()
    async with running_app(settings, clock) as harness:
        assert await harness.books() == []
