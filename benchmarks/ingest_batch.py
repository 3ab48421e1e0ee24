"""Batched ingestion: creditgraph's group-commit writer versus plain ``sqlite3``.

Both sides bill the same events (claude-sonnet-4-6, 1000 prompt + 200 completion
tokens) in batches of ``--batch`` events, one transaction per batch, on databases with
the same schema (the app migrates one, the baseline works on a copy) and the same
pragmas (WAL, synchronous=NORMAL). Per batch the baseline reads the wallet, its open
lot and the key, then inserts the usage rows and ledger entries and updates the
wallet, the lot and the key, and upserts the key's spend mark. Runs alternate
creditgraph, sqlite3, ... and the medians are reported.

    .venv/bin/python -m benchmarks.ingest_batch --events 100000 --batch 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.ledger.tables import EntryKind
from app.runtime import Runtime
from app.usage.rollups import floor_day, floor_hour
from benchmarks.common import (
    ACTION,
    METERED,
    MODEL,
    Fixture,
    breakdown_rows,
    median,
    prepare,
    usage_jobs,
    verify,
)


async def run_writer(fixture: Fixture, events: int, batch: int) -> float:
    """Seconds to bill ``events`` through ``runtime.writer.submit``, ``batch`` per call."""
    runtime = await Runtime.start(fixture.settings)
    try:
        tag = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        # Jobs are built inside the timed loop, as a server builds them from requests.
        for start in range(0, events, batch):
            ids = [f"w-{tag}-{i}" for i in range(start, min(start + batch, events))]
            jobs = usage_jobs(fixture.organization_id, fixture.api_key_id, runtime.prices, ids)
            outcomes = await runtime.writer.submit(jobs)
            assert all(o.outcome == "billed" for o in outcomes), outcomes[0]
        return time.perf_counter() - started
    finally:
        await runtime.stop()


def _stamp(at: datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite (naive, microseconds)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def run_sqlite(db_path: Path, fixture: Fixture, cost: int, events: int, batch: int) -> float:
    """Seconds to bill the same events with hand-written sqlite3 statements."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    org_id, key_id, tag = fixture.organization_id, fixture.api_key_id, uuid.uuid4().hex[:12]
    started = time.perf_counter()
    for start in range(0, events, batch):
        n = min(batch, events - start)
        now = datetime.now(UTC)
        stamp = _stamp(now)
        conn.execute("BEGIN IMMEDIATE")
        wallet_id, balance, version, month_spent = conn.execute(
            "SELECT id, balance, version, month_spent FROM wallets WHERE organization_id = ?",
            (org_id,),
        ).fetchone()
        lot_id, remaining = conn.execute(
            "SELECT id, remaining FROM credit_lots WHERE wallet_id = ? AND remaining > 0"
            " ORDER BY id LIMIT 1",
            (wallet_id,),
        ).fetchone()
        (spent,) = conn.execute("SELECT spent FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        request_ids = [f"s-{tag}-{start + i}" for i in range(n)]
        conn.executemany(
            "INSERT INTO usage_records (organization_id, api_key_id, request_id, model, action,"
            " status, prompt_tokens, completion_tokens, units, provider_cost, cost, tags,"
            " occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *(org_id, key_id, rid, MODEL, ACTION, "succeeded", 1000, 200, "0"),
                    *(None, cost, "{}", stamp, stamp),
                )
                for rid in request_ids
            ],
        )
        conn.executemany(
            "INSERT INTO ledger_entries (wallet_id, version, kind, amount, balance_after,"
            " reference, lot_id, memo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *(wallet_id, version + i + 1, EntryKind.USAGE.value, -cost),
                    *(balance - cost * (i + 1), f"usage:{rid}", None, None, stamp),
                )
                for i, rid in enumerate(request_ids)
            ],
        )
        total = cost * n
        assert remaining >= total, "the benchmark grant is one lot large enough for every event"
        conn.execute(
            "UPDATE wallets SET balance = ?, version = ?, month = ?, month_spent = ? WHERE id = ?",
            (
                balance - total,
                version + n,
                now.year * 100 + now.month,
                month_spent + total,
                wallet_id,
            ),
        )
        conn.execute(
            "UPDATE credit_lots SET remaining = ? WHERE id = ?", (remaining - total, lot_id)
        )
        conn.execute(
            "UPDATE api_keys SET spent = ?, last_used_at = ? WHERE id = ?",
            (spent + total, stamp, key_id),
        )
        conn.execute(
            "INSERT INTO spend_marks (api_key_id, second, cumulative) VALUES (?, ?, ?)"
            " ON CONFLICT (api_key_id, second) DO UPDATE SET cumulative = excluded.cumulative",
            (key_id, int(now.timestamp()), spent + total),
        )
        _count_in_rollups(conn, org_id, key_id, now, total, n)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def _count_in_rollups(
    conn: sqlite3.Connection, org_id: int, key_id: int, now: datetime, total: int, n: int
) -> None:
    """The rollup upserts the writer makes for a batch of one key, model and action: a
    cell and the breakdown rows (by key, and total, model and action for the organization
    and for the key), per hour and per day."""
    add = "DO UPDATE SET spend = spend + excluded.spend, requests = requests + excluded.requests"
    by = breakdown_rows(key_id)
    for suffix, bucket in (("hourly", floor_hour(now)), ("daily", floor_day(now))):
        conn.execute(
            f"INSERT INTO usage_{suffix} (organization_id, bucket, api_key_id, model, action,"
            " spend, requests) VALUES (?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT (organization_id, bucket, api_key_id, model, action) {add}",
            (org_id, _stamp(bucket), key_id, MODEL, ACTION, total, n),
        )
        conn.executemany(
            f"INSERT INTO usage_{suffix}_by (organization_id, scope, dimension, bucket, value,"
            " spend, requests) VALUES (?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT (organization_id, scope, dimension, bucket, value) {add}",
            [(org_id, scope, dim, _stamp(bucket), value, total, n) for scope, dim, value in by],
        )


def checkpoint(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per run")
    parser.add_argument("--batch", type=int, default=1000, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=3, help="creditgraph+sqlite3 pairs")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    app_db, bare_db = workdir / "creditgraph.db", workdir / "baseline.db"
    fixture = asyncio.run(prepare(app_db))
    checkpoint(app_db)
    shutil.copyfile(app_db, bare_db)
    cost = fixture_cost(fixture)
    print(f"databases {app_db} and {bare_db}")
    print(f"{args.events} events per run in batches of {args.batch}; cost {cost} credits each")

    rates: dict[str, list[float]] = {"creditgraph": [], "sqlite3": []}
    for _ in range(args.rounds):
        seconds = asyncio.run(run_writer(fixture, args.events, args.batch))
        rates["creditgraph"].append(args.events / seconds)
        print(f"creditgraph {args.events / seconds:10.0f} events/s ({seconds:.2f} s)", flush=True)
        seconds = run_sqlite(bare_db, fixture, cost, args.events, args.batch)
        rates["sqlite3"].append(args.events / seconds)
        print(f"sqlite3     {args.events / seconds:10.0f} events/s ({seconds:.2f} s)", flush=True)

    app_rate, bare_rate = median(rates["creditgraph"]), median(rates["sqlite3"])
    print("\nmedians of the alternating runs:")
    print(f"creditgraph {app_rate:10.0f} events/s")
    print(f"sqlite3     {bare_rate:10.0f} events/s")
    print(f"ratio creditgraph/sqlite3: {app_rate / bare_rate:.2f}x (target >= 0.5x)")
    ok = verify(app_db)
    ok = verify(bare_db) and ok  # the baseline wrote a ledger the app's checker accepts
    sys.exit(0 if ok else 1)


def fixture_cost(fixture: Fixture) -> int:
    """The price of one benchmark event on the default rate card, from the price book."""
    from app.pricing.book import PriceBook

    prices = PriceBook.load(fixture.settings.price_book_path)
    return prices.model("standard", MODEL, datetime.now(UTC)).charge(METERED)


if __name__ == "__main__":
    main()
