"""Writer jobs that move money outside the gateway: grants, adjustments, expiry, stale holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.book import Book
from app.ledger.state import Needs, holds_t, lots_t, wallets
from app.ledger.tables import EntryKind, HoldStatus
from app.money import amount_json
from app.payments.tables import TransactionKind
from app.webhooks.tables import EventType


@dataclass(frozen=True, slots=True)
class Posted:
    balance: int
    version: int


@dataclass(slots=True)
class PostEntry:
    """One ledger entry on an organization's wallet: a grant, top-up, or adjustment.

    A positive amount opens a lot (with ``expires_at``); a negative one spends lots in
    consumption order.
    """

    organization_id: int
    kind: EntryKind
    amount: int
    reference: str
    memo: str | None = None
    expires_at: datetime | None = None

    def needs(self, needs: Needs) -> None:
        needs.orgs.add(self.organization_id)
        needs.orgs_with_lots.add(self.organization_id)

    def apply(self, book: Book) -> Posted:
        wallet = book.state.wallets[self.organization_id]
        book.post(
            wallet,
            self.kind,
            self.amount,
            self.reference,
            memo=self.memo,
            expires_at=self.expires_at,
        )
        return Posted(wallet.balance, wallet.version)


# The billing transaction that each kind of manual entry is recorded as.
_RECORDED_AS = {
    EntryKind.ADJUSTMENT: TransactionKind.ADJUSTMENT,
    EntryKind.GRANT: TransactionKind.GRANT,
}


@dataclass(slots=True)
class Adjust:
    """A manual entry (an operator's adjustment, a grant), its billing transaction and its
    audit record (``action``, with ``details`` beside the amount) in one transaction: the
    log can neither miss a committed entry nor show one that was rolled back."""

    entry: PostEntry
    actor: str
    action: str = "wallet.adjust"
    details: dict[str, Any] = field(default_factory=dict)

    def needs(self, needs: Needs) -> None:
        self.entry.needs(needs)

    def apply(self, book: Book) -> Posted:
        organization_id = self.entry.organization_id
        before = book.state.wallets[organization_id].balance
        posted = self.entry.apply(book)
        book.record(
            organization_id,
            _RECORDED_AS[self.entry.kind],
            self.entry.amount,
            actor=self.actor,
            memo=self.entry.memo,
        )
        expires_at = self.entry.expires_at
        book.audit(
            organization_id,
            self.actor,
            self.action,
            f"organization:{organization_id}",
            before={"balance": before},
            after={
                "amount": self.entry.amount,
                "reason": self.entry.memo,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
                "balance": posted.balance,
            }
            | self.details,
        )
        return posted


@dataclass(slots=True)
class ExpireLots:
    """Write an ``expiry`` entry for what is left in each lot past its expiry."""

    organization_ids: list[int]

    def needs(self, needs: Needs) -> None:
        needs.orgs.update(self.organization_ids)
        needs.orgs_with_lots.update(self.organization_ids)

    def apply(self, book: Book) -> int:
        expired = 0
        for organization_id in self.organization_ids:
            wallet = book.state.wallets[organization_id]
            total = 0
            for lot in list(wallet.lots or ()):
                if lot.expires_at is not None and lot.expires_at <= book.now and lot.remaining:
                    total += lot.remaining
                    book.post(wallet, EntryKind.EXPIRY, -lot.remaining, f"lot:{lot.id}", lot=lot)
                    expired += 1
            if total:
                book.record(organization_id, TransactionKind.EXPIRY, -total, actor="expiry")
                credits_expired(book, organization_id, total, "lot_expiry")
        return expired


def credits_expired(book: Book, organization_id: int, amount: int, reason: str) -> None:
    """The ``credits.expired`` webhook event: ``amount`` credits expired, because their
    lots reached their expiry ("lot_expiry") or a plan period closed ("plan_period")."""
    data = {"amount": amount_json(amount), "reason": reason}
    book.notify(organization_id, EventType.CREDITS_EXPIRED, data)


@dataclass(slots=True)
class ExpireHolds:
    """Release holds whose usage never came: the reserved credits become available again."""

    hold_ids: list[int]

    def needs(self, needs: Needs) -> None:
        needs.hold_ids.update(self.hold_ids)

    def apply(self, book: Book) -> int:
        wanted = set(self.hold_ids)
        stale = [
            hold
            for hold in book.state.holds.values()
            if hold.id in wanted
            and hold.status == HoldStatus.ACTIVE
            and hold.expires_at <= book.now
        ]
        for hold in stale:
            book.close_hold(hold, HoldStatus.EXPIRED)
        return len(stale)


async def organizations_with_expired_lots(conn: AsyncConnection, now: datetime) -> list[int]:
    rows = await conn.execute(
        select(wallets.c.organization_id)
        .join(lots_t, lots_t.c.wallet_id == wallets.c.id)
        .where(lots_t.c.remaining > 0, lots_t.c.expires_at <= now)
        .distinct()
    )
    return sorted(rows.scalars())


async def stale_hold_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    rows = await conn.execute(
        select(holds_t.c.id)
        .where(holds_t.c.status == HoldStatus.ACTIVE, holds_t.c.expires_at <= now)
        .order_by(holds_t.c.expires_at)
        .limit(limit)
    )
    return list(rows.scalars())
