"""Which credits a debit spends: the one rule, shared by the writer and ``verify``.

Usage consumes lots soonest-expiring first, then oldest; lots that never expire go
last. A lot whose expiry has passed but that the expiry job has not swept yet is
still the soonest-expiring, so it is spent first rather than lost.
A debit larger than the open lots leaves the wallet in overdraft; the next credit
pays that debt off before its lot has anything to spend.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True, eq=False)
class Lot:
    """A credit lot as the writer and the verifier see it."""

    id: int | None
    source: str
    original: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    dirty: bool = False


def consumption_key(lot: Lot) -> tuple[bool, datetime, datetime, int]:
    never = lot.expires_at is None
    # A lot not yet inserted gets its id after every stored one: order by id is insertion order.
    order = lot.id if lot.id is not None else sys.maxsize
    return (never, lot.expires_at or lot.created_at, lot.created_at, order)


def in_consumption_order(lots: Iterable[Lot]) -> list[Lot]:
    return sorted(lots, key=consumption_key)


def consume(lots: list[Lot], amount: int) -> int:
    """Take ``amount`` from ``lots``, which are in consumption order (the writer keeps
    them so); returns what they could not cover."""
    for lot in lots:
        if amount == 0:
            break
        if lot.remaining <= 0:
            continue
        taken = min(lot.remaining, amount)
        lot.remaining -= taken
        lot.dirty = True
        amount -= taken
    return amount


def opening_remaining(amount: int, balance_before: int) -> int:
    """What a new lot of ``amount`` keeps after paying off any overdraft."""
    debt = max(0, -balance_before)
    return amount - min(amount, debt)
