"""Property: whatever history of top-ups, usage, adjustments (grants and debits, some
expiring), expiries and refunds runs across months, each month's statement (its JSON
download) is the ledger summed up: it opens at the balance after the last entry before
the month, each line is its entries' kinds summed, usage by model agrees with the usage
records, it closes at the balance after its last entry, and ``creditgraph verify``
passes (it checks every closed month's statement against a replay of the ledger).

SQLite only, as tests/core/test_ledger_invariants.py: each example needs a database of
its own; the same statements run on PostgreSQL in the other tests of this directory."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.auth import Role
from app.clock import FrozenClock
from app.ledger.book import entries_t
from app.ledger.jobs import ExpireLots
from app.ledger.state import billing_t, usage_t
from app.operations import adjust
from app.orgs.service import OrgRef
from app.payments.service import RefundError
from app.settings import Settings
from tests.conftest import JWT_SECRET, Harness, running_app, usage_event

T0 = datetime(2026, 9, 27, 8, 0, tzinfo=UTC)
MODELS = ("claude-sonnet-4-6", "gpt-5-5", "claude-haiku-4-5")
# What each ledger entry kind counts on, by the statement's definition.
LINE = {
    "top_up": "purchases",
    "bonus": "bonuses",
    "plan_allocation": "grants",
    "rollover": "grants",
    "trial": "grants",
    "adjustment": "adjustments",
    "reversal": "adjustments",
    "usage": "usage",
    "overage": "overage",
    "expiry": "expiries",
    "refund": "refunds",
}

top_up = st.tuples(st.just("top_up"), st.integers(500, 40_000))  # cents
use = st.tuples(st.just("use"), st.integers(1, 2_000_000), st.sampled_from(MODELS))
grant = st.tuples(
    st.just("adjust"), st.integers(-3_000_000, 8_000_000), st.sampled_from([None, 2, 20])
)
refund = st.tuples(st.just("refund"), st.integers(0, 5), st.sampled_from([None, 100, 250]))
tick = st.tuples(st.just("tick"), st.integers(3_600, 12 * 86_400))
operations = st.lists(st.one_of(top_up, use, grant, refund, tick), min_size=1, max_size=30)


def _month(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def _months(first: datetime, last: datetime) -> list[str]:
    months, at = [], first.replace(day=1)
    while at <= last:
        months.append(_month(at))
        at = (at + timedelta(days=32)).replace(day=1)
    return months


async def _history(h: Harness, clock: FrozenClock, ops: list[tuple[Any, ...]]) -> OrgRef:
    org = await h.org("acme")
    key = await h.key(org)
    payments = h.runtime.payments
    for n, op in enumerate(ops):
        match op:
            case ("top_up", int(cents)):
                quote = await payments.quote(org.id, amount_usd=f"{cents // 100}.{cents % 100:02d}")
                await payments.start_top_up(org.id, quote, "test")
            case ("use", int(tokens), str(model)):
                event = usage_event(key.id, f"r{n}", model=model, prompt_tokens=tokens)
                await h.usage(org, event)
            case ("adjust", int(amount), days) if amount:
                expires = None if days is None else clock.now() + timedelta(days=int(days))
                await adjust(h.runtime, org.id, amount, "test", actor="test", expires_at=expires)
            case ("refund", int(index), cents):
                async with h.runtime.db.reader.connect() as conn:
                    paid = (
                        await conn.scalars(
                            select(billing_t.c.id)
                            .where(billing_t.c.kind == "top_up")
                            .order_by(billing_t.c.id)
                        )
                    ).all()
                if paid:
                    amount = None if cents is None else int(cents) * 10_000
                    # Refunded in full already, or less left than asked: nothing.
                    with contextlib.suppress(RefundError):
                        await payments.refund(
                            org.id, paid[index % len(paid)], amount, actor="test", reason=None
                        )
            case ("tick", int(seconds)):
                clock.advance(timedelta(seconds=seconds))
                await h.runtime.writer.run(ExpireLots([org.id]))
    return org


async def _scenario(ops: list[tuple[Any, ...]], directory: Path) -> None:
    clock = FrozenClock(T0)
    app_settings = Settings(
        database_url=f"sqlite+aiosqlite:///{directory / 's.db'}",
        state_dir=directory,
        jwt_secret=JWT_SECRET,
        run_jobs=False,
    )
    async with running_app(app_settings, clock) as h:
        org = await _history(h, clock, ops)
        last = clock.now()
        # Into the next month, so every month of the history is closed and verified.
        clock.at = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
        async with h.runtime.db.reader.connect() as conn:
            entries = (
                await conn.execute(
                    select(entries_t.c.kind, entries_t.c.amount, entries_t.c.balance_after)
                    .add_columns(entries_t.c.created_at)
                    .order_by(entries_t.c.version)
                )
            ).all()
            usage = (
                await conn.execute(select(usage_t.c.model, usage_t.c.cost, usage_t.c.created_at))
            ).all()
        owner = h.token(org, Role.OWNER)
        balance = 0
        for month in _months(T0, clock.now()):
            lines: dict[str, int] = defaultdict(int)
            closing = balance
            for kind, amount, balance_after, at in entries:
                if _month(at) == month:
                    lines[LINE[kind]] += amount
                    closing = balance_after
            by_model: dict[str, int] = defaultdict(int)
            for model, cost, at in usage:
                if _month(at) == month:
                    by_model[model] -= cost
            response = await h.http.get(f"/api/v1/statements/{month}.json", headers=owner)
            assert response.status_code == 200, month
            document = response.json()
            assert document["opening_balance"]["credits"] == str(balance), month
            for line in set(LINE.values()):
                assert document[line]["credits"] == str(lines[line]), (month, line)
            assert document["closing_balance"]["credits"] == str(closing), month
            shown: dict[str, int] = defaultdict(int)
            for row in document["usage_by_model_and_action"]:
                shown[row["model"]] += int(row["amount"]["credits"])
            assert {m: c for m, c in shown.items() if c} == {
                m: c for m, c in by_model.items() if c
            }, month
            balance = closing
        assert balance == (entries[-1].balance_after if entries else 0)
        assert await h.books() == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_every_statement_sums_up_its_month_of_the_ledger(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_scenario(ops, Path(directory)))
