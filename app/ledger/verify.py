"""``creditgraph verify``: recompute every stored counter from the append-only records.

Balances, versions and lots are replayed from the ledger entries with the same lot
rules the writer uses (``ledger.lots``); held amounts from the active holds; key spend,
monthly spend and spend marks from the usage records; each top-up's credits and
refunds from the entries that reference it; each promo code's redemptions from theirs;
receipts and every closed month's statement (``app.statements.checks``). Every mismatch
is reported.

Usage rollups are checked too: hourly cells against the usage records, hourly
breakdowns against the cells (and their tags against the records), daily rows against
their hours. Raw usage may be pruned past its retention (``app.maintenance``),
always before a UTC midnight, while its rollups and ledger entries stay; so the usage
history before the hour of the oldest record left is taken from the hourly rollups (the
ledger, never pruned, still checks it in full), and spend marks before that hour are not
checked (the rollups do not know the second of a call).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.book import entries_t
from app.ledger.lots import Lot, consume, in_consumption_order, opening_remaining
from app.ledger.state import (
    billing_t,
    holds_t,
    keys_t,
    lots_t,
    marks_t,
    month_of,
    promo_codes_t,
    redemptions_t,
    usage_t,
    wallets,
)
from app.ledger.tables import EntryKind, HoldStatus
from app.money import format_usd
from app.payments.tables import PAYMENT_KINDS, TransactionKind, TransactionStatus
from app.statements.checks import verify_receipts, verify_statements
from app.statements.figures import Month
from app.usage.rollups import (
    TAGS,
    WHOLE_ORG,
    Dimension,
    daily_by_t,
    daily_t,
    floor_day,
    floor_hour,
    hourly_by_t,
    hourly_t,
)


async def verify(conn: AsyncConnection, now: datetime | None = None) -> list[str]:
    """Every inconsistency found, as readable lines; empty when the books balance. The
    statements checked are those of the months closed at ``now`` (by default, now)."""
    closed_until = Month.of(now or datetime.now(UTC)).previous()
    problems: list[str] = []
    active = await _active_holds(conn)
    kept_from = await _kept_from(conn)
    pruned = await _pruned_history(conn, kept_from)
    usage = await _usage_by_org(conn, pruned)
    for wallet in (await conn.execute(select(wallets).order_by(wallets.c.id))).all():
        where = f"wallet {wallet.id} (organization {wallet.organization_id})"
        closings: dict[int, int] = {}
        problems += await _replay_wallet(conn, wallet, where, closings)
        problems += await verify_statements(conn, wallet.organization_id, closings, closed_until)
        held = active["wallet"].get(wallet.id, 0)
        if wallet.held != held:
            problems.append(f"{where}: held {wallet.held}, active holds sum to {held}")
        usage_cost = usage[wallet.organization_id]
        if wallet.month:
            in_month = sum(c for at, c in usage_cost if month_of(at) == wallet.month)
            if wallet.month_spent != in_month:
                problems.append(
                    f"{where}: month_spent {wallet.month_spent}, usage in {wallet.month} "
                    f"sums to {in_month}"
                )
        charged = await conn.scalar(
            select(func.coalesce(func.sum(entries_t.c.amount), 0)).where(
                entries_t.c.wallet_id == wallet.id, entries_t.c.kind == EntryKind.USAGE
            )
        )
        billed = sum(c for _, c in usage_cost)
        if -int(charged or 0) != billed:
            problems.append(
                f"{where}: usage entries charge {-int(charged or 0)}, usage records bill {billed}"
            )
    problems += await _verify_keys(conn, active["key"], pruned, kept_from)
    problems += await _verify_rollups(conn, kept_from)
    problems += await _verify_payments(conn)
    problems += await _verify_promos(conn)
    problems += await verify_receipts(conn)
    return problems


async def _verify_payments(conn: AsyncConnection) -> list[str]:
    """A succeeded top-up credited the credits it bought and its bonus once, a pending
    or failed one nothing; its refunds took back exactly what their transactions say."""
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for reference, kind, total in await conn.execute(
        select(entries_t.c.reference, entries_t.c.kind, func.sum(entries_t.c.amount))
        .where(entries_t.c.reference.like("top_up:%"))
        .group_by(entries_t.c.reference, entries_t.c.kind)
    ):
        moved[(reference, kind)] = int(total)
    refunds: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for top_up_id, refunded, clawed in await conn.execute(
        select(billing_t.c.top_up_id, func.sum(billing_t.c.amount), func.sum(billing_t.c.credits))
        .where(billing_t.c.kind == TransactionKind.REFUND)
        .group_by(billing_t.c.top_up_id)
    ):
        refunds[top_up_id] = (int(refunded), int(clawed))
    problems: list[str] = []
    for row in await conn.execute(select(billing_t).where(billing_t.c.kind.in_(PAYMENT_KINDS))):
        where, reference = f"top-up {row.id}", f"top_up:{row.id}"
        succeeded = row.status == TransactionStatus.SUCCEEDED
        expected = row.credits_bought + row.bonus if succeeded else 0
        credited = moved[(reference, EntryKind.TOP_UP)] + moved[(reference, EntryKind.BONUS)]
        if credited != expected or row.credits != expected:
            problems.append(
                f"{where} ({row.status}): entries credit {credited}, its row says "
                f"{row.credits}, expected {expected}"
            )
        refunded, clawed = refunds[row.id]
        if row.refunded != refunded or moved[(reference, EntryKind.REFUND)] != clawed:
            problems.append(
                f"{where}: refunded {row.refunded}, refunds sum to {refunded}; refund entries "
                f"take {-moved[(reference, EntryKind.REFUND)]}, refunds record {-clawed}"
            )
    return problems


async def _verify_promos(conn: AsyncConnection) -> list[str]:
    """Each promo code's counter is its redemptions, numbered from 1, within its limits,
    and each redemption granted the code's amount in one entry (``promo:<code>:<n>``)."""
    granted: dict[str, list[int]] = defaultdict(list)
    for reference, amount in await conn.execute(
        select(entries_t.c.reference, entries_t.c.amount).where(
            entries_t.c.kind == EntryKind.GRANT, entries_t.c.reference.like("promo:%")
        )
    ):
        granted[reference].append(int(amount))
    redemptions: dict[int, list[Any]] = defaultdict(list)
    for row in await conn.execute(select(redemptions_t)):
        redemptions[row.promo_code_id].append(row)
    problems: list[str] = []
    for code in await conn.execute(select(promo_codes_t).order_by(promo_codes_t.c.id)):
        where = f"promo code {code.code}"
        rows = redemptions[code.id]
        numbers = sorted(row.number for row in rows)
        if code.redemptions != len(rows):
            problems.append(f"{where}: counts {code.redemptions} redemptions, {len(rows)} recorded")
        if numbers != list(range(1, len(rows) + 1)):
            problems.append(f"{where}: its redemptions are not numbered 1 to {len(rows)}")
        if code.max_redemptions is not None and len(rows) > code.max_redemptions:
            problems.append(f"{where}: {len(rows)} redemptions, limited to {code.max_redemptions}")
        for organization_id, count in sorted(Counter(r.organization_id for r in rows).items()):
            if count > code.per_organization:
                problems.append(
                    f"{where}: organization {organization_id} redeemed it {count} times, "
                    f"limited to {code.per_organization}"
                )
        for number in numbers:
            reference = f"promo:{code.code}:{number}"
            amounts = granted.pop(reference, [])
            if amounts != [code.amount]:
                problems.append(
                    f"{where}: redemption {number} granted {amounts}, not {[code.amount]}"
                )
    problems += [f"grant entry {reference}: no such redemption" for reference in granted]
    return problems


async def _replay_wallet(
    conn: AsyncConnection, wallet: Any, where: str, closings: dict[int, int]
) -> list[str]:
    """Replay the wallet's entries; ``closings`` gets the balance after each month's last
    entry (by YYYYMM), which that month's statement must close at."""
    problems: list[str] = []
    stored = {
        row.id: row
        for row in await conn.execute(select(lots_t).where(lots_t.c.wallet_id == wallet.id))
    }
    replayed: dict[int, Lot] = {}
    balance = version = 0
    entries = await conn.execute(
        select(entries_t).where(entries_t.c.wallet_id == wallet.id).order_by(entries_t.c.version)
    )
    for entry in entries:
        version += 1
        if entry.version != version:
            problems.append(f"{where}: entry {entry.id} has version {entry.version}, not {version}")
            version = entry.version
        if entry.amount > 0 and entry.lot_id is not None:
            lot = stored.get(entry.lot_id)
            if lot is None or lot.original != entry.amount:
                problems.append(
                    f"{where}: entry {entry.id} opens lot {entry.lot_id}, which differs"
                )
            else:
                replayed[lot.id] = Lot(
                    lot.id,
                    lot.source,
                    lot.original,
                    opening_remaining(entry.amount, balance),
                    lot.expires_at,
                    lot.created_at,
                )
        elif entry.amount < 0 and entry.lot_id is not None:
            target = replayed.get(entry.lot_id)
            if target is None or target.remaining < -entry.amount:
                problems.append(f"{where}: entry {entry.id} takes more than lot {entry.lot_id} has")
            else:
                target.remaining += entry.amount
        elif entry.amount < 0:
            consume(in_consumption_order(replayed.values()), -entry.amount)
        balance += entry.amount
        if entry.balance_after != balance:
            problems.append(
                f"{where}: entry {entry.id} says balance {entry.balance_after}, "
                f"replay gives {balance}"
            )
            balance = entry.balance_after
        closings[month_of(entry.created_at)] = balance
    if wallet.balance != balance:
        problems.append(
            f"{where}: balance {format_usd(wallet.balance)} USD, "
            f"the ledger sums to {format_usd(balance)} USD"
        )
    if wallet.version != version:
        problems.append(f"{where}: version {wallet.version}, {version} entries")
    open_credits = sum(lot.remaining for lot in replayed.values())
    if open_credits != max(balance, 0):
        problems.append(f"{where}: open lots hold {open_credits}, the balance is {balance}")
    for lot_id, lot in stored.items():
        expected = replayed.get(lot_id)
        if expected is None:
            problems.append(f"{where}: lot {lot_id} was opened by no entry")
        elif expected.remaining != lot.remaining:
            problems.append(
                f"{where}: lot {lot_id} has {lot.remaining} left, replay gives {expected.remaining}"
            )
    return problems


async def _active_holds(conn: AsyncConnection) -> dict[str, dict[int, int]]:
    sums: dict[str, dict[int, int]] = {"wallet": defaultdict(int), "key": defaultdict(int)}
    rows = await conn.execute(
        select(holds_t.c.wallet_id, holds_t.c.api_key_id, holds_t.c.amount).where(
            holds_t.c.status == HoldStatus.ACTIVE
        )
    )
    for wallet_id, key_id, amount in rows:
        sums["wallet"][wallet_id] += amount
        sums["key"][key_id] += amount
    return sums


async def _kept_from(conn: AsyncConnection) -> datetime:
    """The hour of the oldest usage record left: raw usage is complete from there on."""
    oldest = await conn.scalar(select(func.min(usage_t.c.created_at)))
    return datetime.max.replace(tzinfo=UTC) if oldest is None else floor_hour(oldest)


async def _pruned_history(conn: AsyncConnection, kept_from: datetime) -> list[Any]:
    """Hourly rollups before ``kept_from``: the pruned usage, oldest first."""
    result = await conn.execute(
        select(hourly_t.c.organization_id, hourly_t.c.api_key_id, hourly_t.c.bucket)
        .add_columns(hourly_t.c.spend)
        .where(hourly_t.c.bucket < kept_from)
        .order_by(hourly_t.c.bucket)
    )
    return list(result.all())


Sums = defaultdict[tuple[Any, ...], list[int]]


def _sums() -> Sums:
    return defaultdict(lambda: [0, 0])


def _add(sums: Sums, group: tuple[Any, ...], spend: int, requests: int) -> None:
    found = sums[group]
    found[0] += spend
    found[1] += requests


def _compare(what: str, stored: dict[Any, list[int]], want: dict[Any, list[int]]) -> list[str]:
    return [
        f"{what} {group}: says {stored.get(group)} (spend, requests), should be {want.get(group)}"
        for group in stored.keys() | want.keys()
        if stored.get(group, [0, 0]) != want.get(group, [0, 0])
    ]


async def _verify_rollups(conn: AsyncConnection, kept_from: datetime) -> list[str]:
    """Hourly cells from ``kept_from`` on equal the usage records; the hourly breakdowns
    equal what the cells give (total, model, action, key) and, from ``kept_from`` on,
    what the records give (the tags, which cells do not keep); daily rows equal the sum
    of their hours."""
    raw, tags = _sums(), _sums()
    for org, key, model, action, created_at, cost, record_tags in await conn.execute(
        select(
            usage_t.c.organization_id,
            usage_t.c.api_key_id,
            usage_t.c.model,
            usage_t.c.action,
            usage_t.c.created_at,
            usage_t.c.cost,
            usage_t.c.tags,
        )
    ):
        hour = floor_hour(created_at)
        _add(raw, (org, key, model, action, hour), cost, 1)
        for tag in TAGS:
            if (value := record_tags.get(tag)) is not None:
                for scope in (WHOLE_ORG, key):
                    _add(tags, (org, scope, tag, hour, value), cost, 1)
    hours, days, by_cells = _sums(), _sums(), _sums()
    for r in await conn.execute(select(hourly_t)):
        org, key, bucket, n = r.organization_id, r.api_key_id, r.bucket, (r.spend, r.requests)
        _add(days, (org, key, r.model, r.action, floor_day(bucket)), *n)
        if bucket >= kept_from:
            _add(hours, (org, key, r.model, r.action, bucket), *n)
        _add(by_cells, (org, WHOLE_ORG, Dimension.API_KEY.value, bucket, str(key)), *n)
        for scope in (WHOLE_ORG, key):
            _add(by_cells, (org, scope, Dimension.TOTAL.value, bucket, ""), *n)
            _add(by_cells, (org, scope, Dimension.MODEL.value, bucket, r.model), *n)
            _add(by_cells, (org, scope, Dimension.ACTION.value, bucket, r.action), *n)
    daily = {
        (r.organization_id, r.api_key_id, r.model, r.action, r.bucket): [r.spend, r.requests]
        for r in await conn.execute(select(daily_t))
    }
    by_hours, by_days, by_tags = _sums(), _sums(), _sums()
    for r in await conn.execute(select(hourly_by_t)):
        group = (r.organization_id, r.scope, r.dimension, r.bucket, r.value)
        _add(by_days, (*group[:3], floor_day(r.bucket), r.value), r.spend, r.requests)
        if r.dimension not in TAGS:
            _add(by_hours, group, r.spend, r.requests)
        elif r.bucket >= kept_from:  # the records of earlier hours are pruned
            _add(by_tags, group, r.spend, r.requests)
    daily_by = {
        (r.organization_id, r.scope, r.dimension, r.bucket, r.value): [r.spend, r.requests]
        for r in await conn.execute(select(daily_by_t))
    }
    return [
        *_compare("hourly usage rollup", hours, raw),
        *_compare("daily usage rollup", daily, days),
        *_compare("hourly usage breakdown", by_hours, by_cells),
        *_compare("hourly usage breakdown", by_tags, tags),
        *_compare("daily usage breakdown", daily_by, by_days),
    ]


async def _usage_by_org(
    conn: AsyncConnection, pruned: list[Any]
) -> dict[int, list[tuple[datetime, int]]]:
    by_org: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for organization_id, _, bucket, spend in pruned:
        by_org[organization_id].append((bucket, spend))
    rows = await conn.execute(
        select(usage_t.c.organization_id, usage_t.c.created_at, usage_t.c.cost)
    )
    for organization_id, created_at, cost in rows:
        by_org[organization_id].append((created_at, cost))
    return by_org


async def _verify_keys(
    conn: AsyncConnection, held: dict[int, int], pruned: list[Any], kept_from: datetime
) -> list[str]:
    problems: list[str] = []
    spend: dict[int, list[tuple[int, int]]] = defaultdict(list)  # key -> [(second, cost)]
    for _, key_id, bucket, cost in pruned:
        if cost > 0:
            spend[key_id].append((int(bucket.timestamp()), cost))
    rows = await conn.execute(
        select(usage_t.c.api_key_id, usage_t.c.created_at, usage_t.c.cost)
        .where(usage_t.c.cost > 0)
        .order_by(usage_t.c.api_key_id, usage_t.c.created_at)
    )
    for key_id, created_at, cost in rows:
        spend[key_id].append((int(created_at.replace(tzinfo=UTC).timestamp()), cost))
    marks: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for key_id, second, cumulative in await conn.execute(
        select(marks_t.c.api_key_id, marks_t.c.second, marks_t.c.cumulative).order_by(
            marks_t.c.api_key_id, marks_t.c.second
        )
    ):
        marks[key_id].append((second, cumulative))
    for key in await conn.execute(select(keys_t.c.id, keys_t.c.spent, keys_t.c.held)):
        where = f"API key {key.id}"
        total = sum(cost for _, cost in spend[key.id])
        if key.spent != total:
            problems.append(f"{where}: spent {key.spent}, usage records sum to {total}")
        if key.held != held.get(key.id, 0):
            problems.append(f"{where}: held {key.held}, active holds sum to {held.get(key.id, 0)}")
        checked = [m for m in marks[key.id] if m[0] >= kept_from.timestamp()]
        problems += _check_marks(where, spend[key.id], checked)
    return problems


def _check_marks(
    where: str, spend: list[tuple[int, int]], marks: list[tuple[int, int]]
) -> list[str]:
    """Each mark must equal the key's spend up to the end of its second."""
    problems = []
    cumulative, i = 0, 0
    for second, mark in marks:
        while i < len(spend) and spend[i][0] <= second:
            cumulative += spend[i][1]
            i += 1
        if mark != cumulative:
            problems.append(
                f"{where}: spend mark at {second} says {mark}, usage gives {cumulative}"
            )
    return problems
