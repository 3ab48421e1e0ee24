"""Batched ingestion: creditgraph versus plain ``sqlite3`` doing the same inserts.

Every side bills the same events (claude-sonnet-4-6, 1000 prompt + 200 completion
tokens) on a database of its own with the same schema (the app migrates one, the
others are copies) and the same pragmas (WAL, synchronous=NORMAL):

- ``writer``: creditgraph's group-commit writer in process, ``--batch`` events per
  ``writer.submit`` (the jobs built inside the timed loop, as a server builds them);
- ``http``: ``creditgraph serve`` (``load.py``) and ``--clients`` clients (4) in a
  process of their own, each posting ``POST /api/v1/usage`` with ``--batch`` events per
  request (the bodies encoded before the clock starts), one request at a time;
- ``sqlite3``: per batch of ``--batch``, one transaction: read the wallet, its open lot
  and the key; insert the usage rows and ledger entries; update the wallet, the lot and
  the key; upsert the key's spend mark; and upsert the hourly and daily rollups the
  writer keeps (cells and breakdowns);
- ``sqlite3, no rollups``: the same without the rollups (usage, debit, ledger only).

Runs alternate between the sides, medians are reported with each creditgraph side's
ratio to both baselines (target >= 0.6x). ``creditgraph verify`` runs on every
database afterwards; the no-rollup baseline's only mismatches are, by design, the
rollups it does not keep.

    .venv/bin/python -m benchmarks.ingest_batch --events 100000 --batch 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
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
    copy_database,
    env_for,
    median,
    prepare,
    settings_for,
    usage_jobs,
    verify,
)
from benchmarks.load import Server, machine, print_changed, serve_creditgraph


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


def run_sqlite(
    db_path: Path, fixture: Fixture, cost: int, events: int, batch: int, *, rollups: bool
) -> float:
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
        if rollups:
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


# Posts the prepared bodies from ``clients`` threads, one request at a time each; prints
# the seconds from the first post to the last answer. Run in a process of its own.
CLIENTS = """
import concurrent.futures, json, sys, time
import httpx
url, token, clients, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bodies = [line.encode() for line in open(path).read().splitlines()]
def post(part):
    with httpx.Client(headers={"Authorization": "Bearer " + token,
                               "Content-Type": "application/json"}, timeout=120) as client:
        for body in part:
            results = client.post(url, content=body).raise_for_status().json()["results"]
            assert all(r["outcome"] == "billed" for r in results), results[0]
started = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    list(pool.map(post, [bodies[i::clients] for i in range(clients)]))
print(time.perf_counter() - started)
"""


def run_http(server: Server, fixture: Fixture, events: int, batch: int, clients: int) -> float:
    """Seconds for ``clients`` clients to bill ``events`` through ``server``."""
    tag = uuid.uuid4().hex[:12]
    bodies = server.log.with_name(f"bodies-{tag}.jsonl")
    with bodies.open("w") as out:
        for start in range(0, events, batch):
            request_ids = [f"h-{tag}-{i}" for i in range(start, min(start + batch, events))]
            event = {
                "api_key_id": fixture.api_key_global_id,
                "model": MODEL,
                "prompt_tokens": METERED.prompt_tokens,
                "completion_tokens": METERED.completion_tokens,
            }
            payload = {"events": [event | {"request_id": rid} for rid in request_ids]}
            out.write(json.dumps(payload) + "\n")
    command = [sys.executable, "-c", CLIENTS, f"{server.url}/api/v1/usage"]
    command += [fixture.service_token, str(clients), str(bodies)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    bodies.unlink()
    return float(output.strip().splitlines()[-1])


SIDES = ("writer", "http", "sqlite3", "sqlite3, no rollups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per run")
    parser.add_argument("--batch", type=int, default=1000, help="events per transaction")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients at once")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every side")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("*.db*"):
        stale.unlink()
    databases = {
        side: workdir / f"{side.replace(', ', '-').replace(' ', '-')}.db" for side in args.sides
    }
    template = workdir / "template.db"
    fixture = asyncio.run(prepare(template))
    for path in databases.values():
        copy_database(template, path)
    cost = fixture_cost(fixture)
    print(machine())
    print(f"{args.events} events per run in batches of {args.batch}; cost {cost} credits each")
    if "http" in args.sides:
        print_changed()
        print(f"http: {args.clients} clients, {args.batch} events per request")

    server = None
    if "http" in databases:
        server = serve_creditgraph("creditgraph", env_for(databases["http"]), workdir)
    rates: dict[str, list[float]] = {side: [] for side in args.sides}
    try:
        for _ in range(args.rounds):
            for side in args.sides:
                path = databases[side]
                if side == "writer":
                    writer_fixture = replace(fixture, settings=settings_for(path))
                    seconds = asyncio.run(run_writer(writer_fixture, args.events, args.batch))
                elif side == "http":
                    assert server is not None
                    seconds = run_http(server, fixture, args.events, args.batch, args.clients)
                else:
                    rollups = side == "sqlite3"
                    seconds = run_sqlite(
                        path, fixture, cost, args.events, args.batch, rollups=rollups
                    )
                rates[side].append(args.events / seconds)
                print(
                    f"  {side:<20} {args.events / seconds:10.0f} events/s ({seconds:.2f} s)",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()

    print("\nmedians of the alternating runs:")
    medians = {side: median(runs) for side, runs in rates.items()}
    for side, rate in medians.items():
        ratios = "".join(
            f"  {rate / medians[base]:.2f}x {base}"
            for base in ("sqlite3", "sqlite3, no rollups")
            if base in medians and side in ("writer", "http")
        )
        print(f"  {side:<20} {rate:10.0f} events/s{ratios}")
    print("target: each creditgraph side >= 0.6x either baseline")
    ok = True
    for side, path in databases.items():
        passed = verify(path)
        ok = ok and (passed or side == "sqlite3, no rollups")
    sys.exit(0 if ok else 1)


def fixture_cost(fixture: Fixture) -> int:
    """The price of one benchmark event on the default rate card, from the price book."""
    from app.pricing.book import PriceBook

    prices = PriceBook.load(fixture.settings.price_book_path)
    return prices.model("standard", MODEL, datetime.now(UTC)).charge(METERED)


if __name__ == "__main__":
    main()
