"""Periodic work, in order: begin plan periods that are due (before expiry, so unused
allocation rolls over rather than expiring), expire lots, release holds whose usage
never came, prune spend marks, prune raw usage past its retention (when set), reconcile
payments whose webhook never came, deliver the webhooks that are due, and charge overage.

Several instances on one PostgreSQL database each run the jobs on their own timer; a
transaction-level advisory lock lets one sweep at a time, and the others skip their turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.keys.windows import LONGEST
from app.ledger.jobs import ExpireHolds, ExpireLots, organizations_with_expired_lots, stale_hold_ids
from app.ledger.state import marks_t, usage_t
from app.usage.rollups import floor_day

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger(__name__)

# The advisory lock's key: any fixed number that nothing else locks ("cgjobs" in ASCII).
JOBS_LOCK = 0x63676A6F6273

# Rows per writer job: bounded so one sweep never holds the write lock for long.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Swept:
    periods_started: int
    lots_expired: int
    holds_expired: int
    marks_pruned: int
    payments_reconciled: int
    overage_billed: int
    usage_pruned: int = 0


async def run_once(runtime: Runtime) -> Swept | None:
    """Run every periodic job now; None, doing nothing, while another instance runs them.
    Safe to run twice all the same (each job re-checks under the writer's lock)."""
    if runtime.settings.is_sqlite:
        return await _sweep(runtime)  # one process owns an SQLite database
    # The lock lives as long as this transaction, which only holds it: the sweep's own
    # work commits in transactions of its own. A crashed instance's lock goes with its
    # connection.
    async with runtime.db.writer.connect() as conn, conn.begin():
        if not await conn.scalar(select(func.pg_try_advisory_xact_lock(JOBS_LOCK))):
            log.info("another instance is running the periodic jobs; skipping")
            return None
        return await _sweep(runtime)


async def _sweep(runtime: Runtime) -> Swept:
    periods = await runtime.subscriptions.renew_due()
    now = runtime.clock.now()
    lots = holds = 0
    async with runtime.db.reader.connect() as conn:
        org_ids = await organizations_with_expired_lots(conn, now)
    for start in range(0, len(org_ids), CHUNK):
        lots += await runtime.writer.run(ExpireLots(org_ids[start : start + CHUNK]))
    while True:
        async with runtime.db.reader.connect() as conn:
            hold_ids = await stale_hold_ids(conn, now, CHUNK)
        if not hold_ids:
            break
        expired = await runtime.writer.run(ExpireHolds(hold_ids))
        holds += expired
        if expired == 0:
            break
    async with runtime.db.write(None) as conn:
        marks = await prune_spend_marks(conn, now)
    pruned = await prune_usage(runtime, now)
    reconciled = await runtime.payments.reconcile()
    await runtime.webhooks.deliver_due()  # deliveries a restart or another process left
    overage = await runtime.payments.bill_overages()
    return Swept(periods, lots, holds, marks, reconciled, overage, pruned)


def usage_cutoff(now: datetime, retention_days: int) -> datetime:
    """Raw usage billed before this is past retention: a UTC midnight, so every hourly
    and daily rollup bucket is either wholly pruned or wholly kept."""
    return floor_day(now - timedelta(days=retention_days))


async def prune_usage(runtime: Runtime, now: datetime) -> int:
    """Delete raw usage records past ``usage_retention_days``, ``CHUNK`` per transaction;
    rollups and ledger entries stay (``ledger.verify`` counts the pruned history from
    the hourly rollups)."""
    days = runtime.settings.usage_retention_days
    if days is None:
        return 0
    cutoff = usage_cutoff(now, days)
    oldest = (
        select(usage_t.c.id)
        .where(usage_t.c.created_at < cutoff)
        .order_by(usage_t.c.id)
        .limit(CHUNK)
    )
    pruned = 0
    while True:
        async with runtime.db.write(None) as conn:
            result = await conn.execute(delete(usage_t).where(usage_t.c.id.in_(oldest)))
        pruned += int(result.rowcount)
        if result.rowcount < CHUNK:
            return pruned


async def prune_spend_marks(conn: AsyncConnection, now: datetime) -> int:
    """Delete marks no window can need again: those older than each key's newest mark
    at or before the start of the longest window (that one stays, as its baseline)."""
    cutoff = int(now.timestamp()) - LONGEST
    older = marks_t.alias("older")
    newest_outside = (
        select(func.max(older.c.second))
        .where(older.c.api_key_id == marks_t.c.api_key_id, older.c.second <= cutoff)
        .scalar_subquery()
    )
    result = await conn.execute(delete(marks_t).where(marks_t.c.second < newest_outside))
    return int(result.rowcount)
