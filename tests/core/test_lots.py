"""Which credits a debit spends: soonest-expiring first, then oldest, never-expiring last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.ledger.lots import Lot, consume, in_consumption_order, opening_remaining

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def lot(lot_id: int, remaining: int, *, expires_in_days: int | None, age_days: int = 0) -> Lot:
    expires = None if expires_in_days is None else T0 + timedelta(days=expires_in_days)
    return Lot(lot_id, "top_up", remaining, remaining, expires, T0 - timedelta(days=age_days))


def test_soonest_expiring_first_then_oldest_then_never_expiring() -> None:
    forever_old = lot(1, 100, expires_in_days=None, age_days=30)
    late = lot(2, 100, expires_in_days=20)
    soon_new = lot(3, 100, expires_in_days=5, age_days=1)
    soon_old = lot(4, 100, expires_in_days=5, age_days=3)
    lots = in_consumption_order([forever_old, late, soon_new, soon_old])
    assert lots == [soon_old, soon_new, late, forever_old]

    assert consume(lots, 250) == 0
    assert [x.remaining for x in (soon_old, soon_new, late, forever_old)] == [0, 0, 50, 100]
    assert consume(lots, 100) == 0
    assert [late.remaining, forever_old.remaining] == [0, 50]


def test_debit_past_every_lot_returns_the_uncovered_part() -> None:
    lots = in_consumption_order([lot(1, 30, expires_in_days=None), lot(2, 20, expires_in_days=1)])
    assert consume(lots, 80) == 30
    assert all(x.remaining == 0 for x in lots)
    assert all(x.dirty for x in lots)


def test_untouched_lots_stay_clean() -> None:
    first, second = lot(1, 50, expires_in_days=1), lot(2, 50, expires_in_days=2)
    consume(in_consumption_order([second, first]), 10)
    assert first.dirty
    assert not second.dirty


def test_new_lot_pays_off_overdraft_first() -> None:
    assert opening_remaining(1_000, balance_before=-300) == 700
    assert opening_remaining(1_000, balance_before=-5_000) == 0
    assert opening_remaining(1_000, balance_before=20) == 1_000


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.one_of(st.none(), st.integers(0, 60))),
        max_size=12,
    ),
    st.integers(0, 200_000),
)
def test_consume_conserves_credits(rows: list[tuple[int, int | None]], amount: int) -> None:
    lots = in_consumption_order(
        lot(i, remaining, expires_in_days=days) for i, (remaining, days) in enumerate(rows)
    )
    before = sum(x.remaining for x in lots)
    uncovered = consume(lots, amount)
    after = sum(x.remaining for x in lots)
    assert before - after + uncovered == amount
    assert uncovered == max(0, amount - before)
    assert all(x.remaining >= 0 for x in lots)
