"""A statement's figures: one calendar month (UTC) of a wallet's ledger, summed up.

Statements are computed from the ledger when asked for, never stored: entries are
append-only, so a closed month's figures never change, and there is nothing to drift.
Calendar months rather than plan periods: every organization has them (prepaid ones
have no plan), they do not move when a plan changes mid-period (an upgrade starts a new
period at once), and the monthly spend cap and auto-reload's monthly maximum already
count them.

The opening balance is the ledger's balance when the month began (the balance after its
last entry before then), so it is the previous month's closing balance. Each entry kind
counts on exactly one line, so opening + lines = closing, the balance after the month's
last entry; ``creditgraph verify`` checks both against a replay of the ledger for every
closed month. Usage by model and action comes from the daily usage rollups, written in
the same transaction as the usage entries (and kept when raw usage is pruned); they sum
to the usage line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from app.fields import digits
from app.ledger.book import entries_t
from app.ledger.state import month_of, next_month, orgs_t, wallets
from app.ledger.tables import EntryKind
from app.statements.receipts import receipts_t
from app.usage.rollups import daily_t


class Line(StrEnum):
    """A statement's lines between its opening and closing balances."""

    PURCHASES = "purchases"  # credits bought by top-ups and automatic purchases
    BONUSES = "bonuses"  # the bonus ladder's credits on them
    GRANTS = "grants"  # plan allocations, rollovers (net zero), trials, grants, promo codes
    ADJUSTMENTS = "adjustments"  # manual corrections, either way
    USAGE = "usage"
    OVERAGE = "overage"  # usage past a plan's allocation, settled in USD at period end
    EXPIRIES = "expiries"
    REFUNDS = "refunds"  # credits clawed back by refunds


LINE_OF: dict[str, Line] = {
    EntryKind.TOP_UP: Line.PURCHASES,
    EntryKind.BONUS: Line.BONUSES,
    EntryKind.PLAN_ALLOCATION: Line.GRANTS,
    EntryKind.ROLLOVER: Line.GRANTS,
    EntryKind.TRIAL: Line.GRANTS,
    EntryKind.GRANT: Line.GRANTS,
    EntryKind.ADJUSTMENT: Line.ADJUSTMENTS,
    EntryKind.REVERSAL: Line.ADJUSTMENTS,
    EntryKind.USAGE: Line.USAGE,
    EntryKind.OVERAGE: Line.OVERAGE,
    EntryKind.EXPIRY: Line.EXPIRIES,
    EntryKind.REFUND: Line.REFUNDS,
}
# A new entry kind must be given its line, or closing balances would not add up.
assert set(LINE_OF) == set(EntryKind), "every ledger entry kind needs a statement line"


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month (UTC)."""

    year: int
    month: int

    @classmethod
    def of(cls, at: datetime) -> Month:
        at = at.astimezone(UTC)
        return cls(at.year, at.month)

    @classmethod
    def parse(cls, text: str) -> Month | None:
        """``"2026-11"``, or None for anything else."""
        year, dash, month = text.partition("-")
        if not (dash and len(year) == 4 and len(month) == 2 and digits(year)):
            return None
        if not digits(month) or not 1 <= int(month) <= 12 or int(year) < 1970:
            return None
        return cls(int(year), int(month))

    @classmethod
    def from_number(cls, number: int) -> Month:
        """From YYYYMM (``month_of``)."""
        return cls(number // 100, number % 100)

    @property
    def number(self) -> int:
        return self.year * 100 + self.month

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return next_month(self.start)

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class UsageLine:
    model: str
    action: str
    requests: int
    amount: int  # credits charged, negative as on the ledger


@dataclass(frozen=True, slots=True)
class Figures:
    month: Month
    opening: int
    lines: dict[Line, int]  # every line, zero included
    usage: list[UsageLine]  # by model and action, the largest spend first
    receipts: list[Any]  # the month's receipts (rows), in number order
    closing: int


def first_month(conn: Connection, organization_id: int) -> Month:
    """The month the organization's statements begin: its creation, or its wallet's first
    entry should one be older (history written with an earlier clock, as the demo's)."""
    first_entry = (
        select(func.min(entries_t.c.created_at))
        .where(entries_t.c.wallet_id == wallets.c.id)
        .scalar_subquery()
    )
    created, first = conn.execute(
        select(orgs_t.c.created_at, first_entry)
        .join(wallets, wallets.c.organization_id == orgs_t.c.id)
        .where(orgs_t.c.id == organization_id)
    ).one()
    return Month.of(created if first is None else min(created, first))


def balance_before(conn: Connection, wallet_id: int, at: datetime) -> int:
    """The wallet's balance just before ``at``: after its last entry before then."""
    balance = conn.scalar(
        select(entries_t.c.balance_after)
        .where(entries_t.c.wallet_id == wallet_id, entries_t.c.created_at < at)
        .order_by(entries_t.c.created_at.desc(), entries_t.c.version.desc())
        .limit(1)
    )
    return int(balance or 0)


def figures(conn: Connection, organization_id: int, month: Month) -> Figures:
    """The statement of ``month`` (a month still running: so far)."""
    start, end = month.start, month.end
    wallet_id = conn.scalar(
        select(wallets.c.id).where(wallets.c.organization_id == organization_id)
    )
    assert wallet_id is not None
    opening = balance_before(conn, wallet_id, start)
    lines = dict.fromkeys(Line, 0)
    for kind, total in conn.execute(
        select(entries_t.c.kind, func.sum(entries_t.c.amount))
        .where(
            entries_t.c.wallet_id == wallet_id,
            entries_t.c.created_at >= start,
            entries_t.c.created_at < end,
        )
        .group_by(entries_t.c.kind)
    ):
        lines[LINE_OF[kind]] += int(total)
    spend = func.sum(daily_t.c.spend)
    usage = [
        UsageLine(model, action, int(requests), -int(total))
        for model, action, requests, total in conn.execute(
            select(daily_t.c.model, daily_t.c.action, func.sum(daily_t.c.requests), spend)
            .where(
                daily_t.c.organization_id == organization_id,
                daily_t.c.bucket >= start,
                daily_t.c.bucket < end,
            )
            .group_by(daily_t.c.model, daily_t.c.action)
            .order_by(spend.desc(), daily_t.c.model, daily_t.c.action)
        )
    ]
    receipts = list(
        conn.execute(
            select(receipts_t)
            .where(
                receipts_t.c.organization_id == organization_id,
                receipts_t.c.issued_at >= start,
                receipts_t.c.issued_at < end,
            )
            .order_by(receipts_t.c.sequence)
        )
    )
    return Figures(month, opening, lines, usage, receipts, opening + sum(lines.values()))


def closed(month: Month, now: datetime) -> bool:
    """Whether the month has ended: its figures are final."""
    return month_of(now) > month.number
