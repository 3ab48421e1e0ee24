"""Periodic work: expire lots past their expiry, release holds whose usage never came."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.ledger.jobs import ExpireHolds, ExpireLots, organizations_with_expired_lots, stale_hold_ids

if TYPE_CHECKING:
    from app.runtime import Runtime

# Rows per writer job: bounded so one sweep never holds the write lock for long.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Swept:
    lots_expired: int
    holds_expired: int


async def run_once(runtime: Runtime) -> Swept:
    """Run every periodic job now; safe to run twice (each job re-checks under the lock)."""
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
    return Swept(lots, holds)
