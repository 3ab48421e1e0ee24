"""What each rule watches, measured now, and whether its condition holds.

Values are in the rule's unit, in millionths: credits for USD, millionths of a percent
for percents (so ``80`` percent is 80,000,000).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from app.alerts.tables import AlertKind
from app.db import table
from app.keys.windows import spent_in_window
from app.ledger.state import key_state, keys_t, load_marks, lots_t, wallets
from app.money import format_usd
from app.plans.tables import PlanPeriod
from app.usage.rollups import DAY, daily_by_t, floor_day
from app.usage.summary import series

MICRO = 1_000_000  # millionths per unit, for USD and percents alike
periods_t = table(PlanPeriod)


def percent(used: int, limit: int) -> int:
    """``used`` as millionths of a percent of ``limit`` (rounded down)."""
    return used * 100 * MICRO // limit if limit > 0 else 0


def _daily_spend(conn: Connection, organization_id: int, now: datetime) -> int:
    """Today's (UTC) spend: one rollup row, not today's usage records."""
    today = floor_day(now)
    spend, _ = series(conn, daily_by_t, organization_id, None, today, today + DAY).get(
        today, (0, 0)
    )
    return spend


def _allocation_spent(conn: Connection, organization_id: int, now: datetime) -> int | None:
    """Percent of the open plan period's allocation spent; None without one."""
    statement = (
        select(lots_t.c.original, lots_t.c.remaining)
        .select_from(periods_t.join(lots_t, lots_t.c.id == periods_t.c.allocation_lot_id))
        .where(
            periods_t.c.organization_id == organization_id,
            periods_t.c.closed_at.is_(None),
            periods_t.c.period_start <= now,
        )
        .order_by(periods_t.c.period_start.desc())
        .limit(1)
    )
    row = conn.execute(statement).first()
    if row is None or row.original <= 0:
        return None
    return percent(row.original - row.remaining, row.original)


def _key_percent(conn: Connection, organization_id: int, key_id: int, now: datetime) -> int | None:
    """The highest share used of the key's quota and windows; None without caps."""
    row = conn.execute(
        select(keys_t).where(keys_t.c.id == key_id, keys_t.c.organization_id == organization_id)
    ).first()
    if row is None:
        return None
    key = key_state(row)
    shares = []
    if key.quota is not None:
        shares.append(percent(key.spent + key.held, key.quota))
    if key.limits:
        marks = load_marks(conn, [key.id], int(now.timestamp())).get(key.id, {})
        for window, limit in key.limits.items():
            spent = key.spent if window not in marks else spent_in_window(key.spent, marks[window])
            shares.append(percent(spent + key.held, limit))
    return max(shares) if shares else None


def measure(
    conn: Connection, organization_id: int, rules: list[Any], now: datetime
) -> dict[int, int]:
    """Each rule's value now, by rule id; rules with nothing to measure are left out."""
    values: dict[int, int] = {}
    cache: dict[tuple[str, int | None], int | None] = {}
    for rule in rules:
        kind = AlertKind(rule.kind)
        slot = (kind.value, rule.api_key_id if kind is AlertKind.KEY_CAP_PERCENT else None)
        if slot not in cache:
            cache[slot] = _value(conn, organization_id, kind, rule.api_key_id, now)
        value = cache[slot]
        if value is not None:
            values[rule.id] = value
    return values


def _value(
    conn: Connection, organization_id: int, kind: AlertKind, key_id: int | None, now: datetime
) -> int | None:
    if kind is AlertKind.BALANCE_BELOW:
        balance = conn.scalar(
            select(wallets.c.balance).where(wallets.c.organization_id == organization_id)
        )
        return None if balance is None else int(balance)
    if kind is AlertKind.DAILY_SPEND_ABOVE:
        return _daily_spend(conn, organization_id, now)
    if kind is AlertKind.SPEND_PERCENT_OF_ALLOCATION:
        return _allocation_spent(conn, organization_id, now)
    if kind is AlertKind.KEY_CAP_PERCENT and key_id is not None:
        return _key_percent(conn, organization_id, key_id, now)
    return None


def holds(kind: AlertKind, value: int, threshold: int) -> bool:
    """Whether the rule's condition holds: the alert fires as it starts to."""
    if kind is AlertKind.BALANCE_BELOW:
        return value < threshold
    if kind is AlertKind.DAILY_SPEND_ABOVE:
        return value > threshold
    return value >= threshold  # the percent kinds


def message(kind: AlertKind, value: int | None, threshold: int | None, reason: str = "") -> str:
    v = format_usd(value or 0)
    t = format_usd(threshold or 0)
    if kind is AlertKind.BALANCE_BELOW:
        return f"The balance, {v} USD, is below {t} USD."
    if kind is AlertKind.DAILY_SPEND_ABOVE:
        return f"Today's spend (UTC), {v} USD, is above {t} USD."
    if kind is AlertKind.SPEND_PERCENT_OF_ALLOCATION:
        return f"{v}% of the plan period's allocation is spent (threshold {t}%)."
    if kind is AlertKind.KEY_CAP_PERCENT:
        return f"The API key has used {v}% of its quota or tightest window (threshold {t}%)."
    return f"An auto-reload failed: {reason or 'the charge failed'}"[:500]
