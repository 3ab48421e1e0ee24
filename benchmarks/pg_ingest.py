"""Batched ingestion into PostgreSQL by two instances: creditgraph's writers versus a
bare asyncpg script.

Each side runs as two processes on one database (a copy of one prepared database: an
org with a large grant and a key), which bill the same events (claude-sonnet-4-6,
1000 prompt + 200 completion tokens) to the same wallet in batches of ``--batch``
events, one transaction per batch, half the events each. A creditgraph process is an
instance without its HTTP front: a ``Runtime`` (with the Redis event bus when
``--redis`` is given, as in production) whose writer takes each batch as one
``submit``. A bare process, per batch, locks and reads the wallet, its open lot and
the key (``FOR UPDATE``, the same order), then inserts the usage rows and ledger
entries (``executemany``), updates the wallet, the lot and the key, upserts the key's
spend mark and the hourly and daily rollups, and commits. Both processes of a side
start together (each prepares, then waits for "go"); a run's rate is all its events
over the time from "go" until both finish. Runs alternate creditgraph, asyncpg, ...
on fresh copies; the medians are reported, and the last copies are checked with
``creditgraph verify``.

    .venv/bin/python -m benchmarks.pg_ingest --events 100000 --batch 1000 --rounds 3 \\
        --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.ledger.tables import EntryKind
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.pricing.book import PriceBook
from app.runtime import Runtime
from app.settings import Settings
from app.usage.rollups import floor_day, floor_hour
from benchmarks.common import (
    ACTION,
    GRANT_USD,
    JWT_SECRET,
    METERED,
    MODEL,
    ROOT,
    breakdown_rows,
    median,
    usage_jobs,
)

INSTANCES = 2


def _settings(url: str, redis: str | None = None) -> Settings:
    return Settings(
        database_url=url,
        state_dir=Path("/nonexistent"),  # unused: the JWT secret is given
        jwt_secret=JWT_SECRET,
        run_jobs=False,
        redis_url=redis,
        redis_channel_prefix=f"bench-{uuid.uuid4().hex}:",
    )


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _database(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(server))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def prepare(url: str) -> tuple[int, int]:
    """Migrate; create the org with a large grant and a key: their ids."""
    runtime = await Runtime.start(_settings(url))
    try:
        org = await create_organization(runtime, slug="bench", grant=parse_usd(GRANT_USD))
        key = await create_api_key(runtime, org.id, "benchmark key")
        return org.id, key.id
    finally:
        await runtime.stop()


# -- the workers (one process each) ------------------------------------------------------


def _wait_for_go() -> None:
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"


async def app_worker(args: argparse.Namespace) -> None:
    runtime = await Runtime.start(_settings(args.url, args.redis))
    try:
        tag = uuid.uuid4().hex[:12]
        _wait_for_go()
        # Jobs are built inside the timed loop, as a server builds them from requests.
        for start in range(0, args.events, args.batch):
            ids = [f"w-{tag}-{i}" for i in range(start, min(start + args.batch, args.events))]
            jobs = usage_jobs(args.org, args.key, runtime.prices, ids)
            outcomes = await runtime.writer.submit(jobs)
            assert all(o.outcome == "billed" for o in outcomes), outcomes[0]
    finally:
        await runtime.stop()


async def bare_worker(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(_dsn(args.url))
    cost = PriceBook.load(None).model("standard", MODEL, datetime.now(UTC)).charge(METERED)
    org_id, key_id, tag = args.org, args.key, uuid.uuid4().hex[:12]
    insert_usage = await conn.prepare(
        "INSERT INTO usage_records (organization_id, api_key_id, request_id, model, action,"
        " status, prompt_tokens, completion_tokens, units, provider_cost, cost, tags,"
        " occurred_at, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )
    insert_entries = await conn.prepare(
        "INSERT INTO ledger_entries (wallet_id, version, kind, amount, balance_after,"
        " reference, lot_id, memo, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    add = (
        "DO UPDATE SET spend = {t}.spend + excluded.spend,"
        " requests = {t}.requests + excluded.requests"
    )
    cell = (
        " (organization_id, bucket, api_key_id, model, action, spend, requests)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (organization_id, bucket, api_key_id, model, action) "
    ) + add
    by = (
        " (organization_id, scope, dimension, bucket, value, spend, requests)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (organization_id, scope, dimension, bucket, value) "
    ) + add
    breakdowns = breakdown_rows(key_id)
    _wait_for_go()
    for start in range(0, args.events, args.batch):
        n = min(args.batch, args.events - start)
        async with conn.transaction():
            wallet_id, balance, version, month_spent = await conn.fetchrow(
                "SELECT id, balance, version, month_spent FROM wallets"
                " WHERE organization_id = $1 FOR UPDATE",
                org_id,
            )
            lot_id, remaining = await conn.fetchrow(
                "SELECT id, remaining FROM credit_lots WHERE wallet_id = $1 AND remaining > 0"
                " ORDER BY id LIMIT 1 FOR UPDATE",
                wallet_id,
            )
            spent = await conn.fetchval(
                "SELECT spent FROM api_keys WHERE id = $1 FOR UPDATE", key_id
            )
            # The time is taken once the locks are held: a batch that waited for the
            # other process must not be stamped before that process's commit, or its
            # spend mark would count spend billed after its second.
            now = datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC
            request_ids = [f"s-{tag}-{start + i}" for i in range(n)]
            await insert_usage.executemany(
                [
                    (
                        *(org_id, key_id, rid, MODEL, ACTION, "succeeded", 1000, 200, "0"),
                        *(None, cost, "{}", now, now),
                    )
                    for rid in request_ids
                ]
            )
            await insert_entries.executemany(
                [
                    (
                        *(wallet_id, version + i + 1, EntryKind.USAGE.value, -cost),
                        *(balance - cost * (i + 1), f"usage:{rid}", None, None, now),
                    )
                    for i, rid in enumerate(request_ids)
                ]
            )
            total = cost * n
            assert remaining >= total, "the grant is one lot large enough for every event"
            await conn.execute(
                "UPDATE wallets SET balance = $1, version = $2, month = $3, month_spent = $4"
                " WHERE id = $5",
                balance - total,
                version + n,
                now.year * 100 + now.month,
                month_spent + total,
                wallet_id,
            )
            await conn.execute(
                "UPDATE credit_lots SET remaining = $1 WHERE id = $2", remaining - total, lot_id
            )
            await conn.execute(
                "UPDATE api_keys SET spent = $1, last_used_at = $2 WHERE id = $3",
                spent + total,
                now,
                key_id,
            )
            await conn.execute(
                "INSERT INTO spend_marks (api_key_id, second, cumulative) VALUES ($1, $2, $3)"
                " ON CONFLICT (api_key_id, second) DO UPDATE SET cumulative = excluded.cumulative",
                key_id,
                int(now.replace(tzinfo=UTC).timestamp()),
                spent + total,
            )
            hour = floor_hour(now.replace(tzinfo=UTC)).replace(tzinfo=None)
            day = floor_day(now.replace(tzinfo=UTC)).replace(tzinfo=None)
            for table, bucket in (("usage_hourly", hour), ("usage_daily", day)):
                await conn.execute(
                    f"INSERT INTO {table}" + cell.format(t=table),
                    *(org_id, bucket, key_id, MODEL, ACTION, total, n),
                )
                await conn.executemany(
                    f"INSERT INTO {table}_by" + by.format(t=f"{table}_by"),
                    [(org_id, *key, bucket, value, total, n) for *key, value in breakdowns],
                )
    await conn.close()


# -- the driver ----------------------------------------------------------------------------


def run_side(side: str, url: str, args: argparse.Namespace, org: int, key: int) -> float:
    """Events per second of ``INSTANCES`` processes of ``side`` sharing ``args.events``."""
    share = args.events // INSTANCES
    command = [sys.executable, "-m", "benchmarks.pg_ingest", "--worker", side, "--url", url]
    command += ["--events", str(share), "--batch", str(args.batch)]
    command += ["--org", str(org), "--key", str(key)]
    if args.redis and side == "creditgraph":
        command += ["--redis", args.redis]
    workers = [
        subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(INSTANCES)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready", f"{side} worker failed to start"
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        assert worker.wait() == 0, f"{side} worker failed"
    return share * INSTANCES / (time.perf_counter() - started)


def verify(url: str) -> bool:
    cli = Path(sys.executable).parent / "creditgraph"
    env = os.environ | {"CREDITGRAPH_DATABASE_URL": url}
    result = subprocess.run(
        [str(cli), "verify"], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    print(
        f"creditgraph verify: exit {result.returncode}: {(result.stdout + result.stderr).strip()}"
    )
    return result.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per run (all)")
    parser.add_argument("--batch", type=int, default=1000, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=3, help="creditgraph+asyncpg pairs")
    parser.add_argument(
        "--pg",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (databases are created and dropped there)",
    )
    parser.add_argument("--redis", help="the creditgraph side's event bus (default: none)")
    # The worker processes' own arguments.
    parser.add_argument("--worker", choices=["creditgraph", "asyncpg"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--org", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "creditgraph":
        asyncio.run(app_worker(args))
        return
    if args.worker == "asyncpg":
        asyncio.run(bare_worker(args))
        return

    run = uuid.uuid4().hex[:12]
    template = f"cg_bench_{run}"
    asyncio.run(_admin(args.pg, f'CREATE DATABASE "{template}"'))
    created = [template]
    try:
        org, key = asyncio.run(prepare(_database(args.pg, template)))
        print(
            f"{args.events} events per run over {INSTANCES} processes, batches of {args.batch};"
            f" event bus: {args.redis or 'in-process'}"
        )
        rates: dict[str, list[float]] = {"creditgraph": [], "asyncpg": []}
        last: dict[str, str] = {}
        for round_ in range(args.rounds):
            for side in rates:
                name = f"cg_bench_{run}_{side}_{round_}"
                asyncio.run(_admin(args.pg, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                created.append(name)
                last[side] = _database(args.pg, name)
                rate = run_side(side, last[side], args, org, key)
                rates[side].append(rate)
                print(f"{side:<11} {rate:10.0f} events/s", flush=True)
        app_rate, bare_rate = median(rates["creditgraph"]), median(rates["asyncpg"])
        print("\nmedians of the alternating runs:")
        print(f"creditgraph {app_rate:10.0f} events/s")
        print(f"asyncpg     {bare_rate:10.0f} events/s")
        print(f"ratio creditgraph/asyncpg: {app_rate / bare_rate:.2f}x (target >= 0.5x)")
        ok = verify(last["creditgraph"])
        ok = verify(last["asyncpg"]) and ok  # the baseline wrote a ledger the checker accepts
    finally:
        for name in reversed(created):
            asyncio.run(_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
