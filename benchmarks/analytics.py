"""Usage analytics at scale (issue 6): the contract ``UsageSummary`` (30 days, DAY) and the
first page of the contract ``Usage`` with a filter, at 10,000 and 1,000,000 records.

For each size a fresh SQLite database is loaded through the batch ingestion path (the
writer with ``UsageJob``s, as ``benchmarks/ingest_batch.py``) under a ``FrozenClock``
that walks through 60 days of billing time, with 20 keys, 8 models and 3 actions. Then
the operations are sent one after the other, after a warm-up, as HTTP requests to the
whole app in-process (httpx over ``ASGITransport`` on ``app.main.create_app``) with an
owner's JWT; p50 and p95 latencies are reported, and the ratio of the 1M figures to the
10k ones.

Targets: p95 < 50 ms each at 1M records, and 1M p95 <= 2 x 10k p95.

    .venv/bin/python -m benchmarks.analytics --workdir /tmp/cg-bench/analytics
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from app.auth import Role, issue_token
from app.clock import FrozenClock
from app.ids import to_global_id
from app.main import create_app
from app.operations import create_api_key
from app.pricing.book import Metered
from app.runtime import Runtime
from app.usage.ingest import UsageEvent, UsageJob
from app.usage.reads import UsageFilter, usage_count
from app.usage.rollups import Dimension, daily_by_t, daily_t, floor_day, hourly_t
from app.usage.summary import breakdown, series, spent_since
from app.usage.tables import UsageStatus
from benchmarks.common import JWT_SECRET, ORG_SLUG, Fixture, env_for, prepare, settings_for
from benchmarks.graphql_http import contract_operation

SIZES = (10_000, 1_000_000)
DAYS = 60
KEYS = 20
MODELS = [
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-haiku-4-5",
    "gpt-5-5",
    "gpt-5-mini",
    "deepseek-v4-pro",
    "gemini-3-1-pro",
    "gemini-3-flash",
]
ACTIONS = ["llm_inference", "api_request", "knowledge_base_query"]
FILTER_MODEL = "gpt-5-mini"
TARGET_P95_MS = 50.0
TARGET_RATIO = 2.0


@dataclass
class Loaded:
    fixture: Fixture
    key_ids: list[int]
    end: datetime  # billing time of the last batch
    seconds: float


async def load(db_path: Path, records: int, end: datetime) -> Loaded:
    """A fresh database with ``records`` usage records billed over the ``DAYS`` before
    ``end`` through the writer, in batches under a clock advanced between them."""
    fixture = await prepare(db_path)
    start = end - timedelta(days=DAYS)
    clock = FrozenClock(start)
    runtime = await Runtime.start(fixture.settings, clock)
    try:
        key_ids = [fixture.api_key_id]
        for n in range(1, KEYS):
            key = await create_api_key(runtime, fixture.organization_id, f"key {n}")
            key_ids.append(key.id)
        batch = max(50, min(1000, records // 200))
        batches = -(-records // batch)
        step = timedelta(days=DAYS) / batches
        rng = random.Random(6)
        started = time.perf_counter()
        for b, first in enumerate(range(0, records, batch)):
            clock.at = start + step * (b + 1)
            jobs = [
                UsageJob(
                    fixture.organization_id,
                    UsageEvent(
                        request_id=f"a-{i}",
                        api_key_id=key_ids[i % KEYS],
                        model=MODELS[(i // KEYS) % len(MODELS)],
                        action=ACTIONS[i % len(ACTIONS)],
                        metered=Metered(
                            prompt_tokens=rng.randint(100, 4000),
                            completion_tokens=rng.randint(20, 1200),
                        ),
                        status=UsageStatus.SUCCEEDED,
                        occurred_at=None,
                        tags={
                            "agent": ("support-bot", "coder", "researcher")[i % 3],
                            # 20 calls per conversation, on one key: 50,000 at 1M.
                            "conversation": f"c{i % KEYS}-{i // (KEYS * 20)}",
                        },
                    ),
                    runtime.prices,
                )
                for i in range(first, min(first + batch, records))
            ]
            outcomes = await runtime.writer.submit(jobs)
            assert all(o.outcome == "billed" for o in outcomes), outcomes[0]
            if b % 100 == 99:
                print(f"  {first + len(jobs):>9,} records", flush=True)
        seconds = time.perf_counter() - started
    finally:
        await runtime.stop()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    return Loaded(fixture, key_ids, clock.at, seconds)


TAGS_QUERY = """
query UsageTags($since: DateTime!, $until: DateTime!) {
  viewer { organization { usageSummary(since: $since, until: $until, granularity: DAY) {
    byAgent { value spend { credits } requests }
    byConversation(first: 20) { value spend { credits } requests }
  } } }
}
"""
TAGS = "UsageSummary tags 30d"  # not a contract operation, so not one of the targets


def reopen(db_path: Path) -> Loaded:
    """A database an earlier run loaded (``--reuse``): its organization, keys and end."""
    with sqlite3.connect(db_path) as conn:
        (org,) = conn.execute("SELECT id FROM organizations").fetchone()
        key_ids = [k for (k,) in conn.execute("SELECT id FROM api_keys ORDER BY id")]
        (last,) = conn.execute("SELECT max(created_at) FROM usage_records").fetchone()
    fixture = Fixture(
        settings_for(db_path),
        env_for(db_path),
        org,
        key_ids[0],
        to_global_id("ApiKey", key_ids[0]),
        "",
    )
    return Loaded(fixture, key_ids, datetime.fromisoformat(last).replace(tzinfo=UTC), 0.0)


def operations(loaded: Loaded) -> dict[str, dict[str, Any]]:
    """Request bodies: the contract operations, verbatim, with their variables, and the
    tag breakdowns (agents, the top 20 conversations)."""
    until = loaded.end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - timedelta(days=30)
    summary, usage = contract_operation("UsageSummary"), contract_operation("Usage")
    key = to_global_id("ApiKey", loaded.key_ids[3])
    return {
        "UsageSummary 30d DAY": {
            "query": summary,
            "operationName": "UsageSummary",
            "variables": {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "granularity": "DAY",
            },
        },
        TAGS: {
            "query": TAGS_QUERY,
            "operationName": "UsageTags",
            "variables": {"since": since.isoformat(), "until": until.isoformat()},
        },
        f"Usage model={FILTER_MODEL}": {
            "query": usage,
            "operationName": "Usage",
            "variables": {"filter": {"model": FILTER_MODEL}, "first": 50},
        },
        "Usage apiKeyId": {
            "query": usage,
            "operationName": "Usage",
            "variables": {"filter": {"apiKeyId": key}, "first": 50},
        },
    }


def sql_timings(loaded: Loaded, db_path: Path, runs: int = 30) -> dict[str, float]:
    """Median ms of each read behind the two operations, alone on a synchronous
    connection (SQL and SQLAlchemy, no GraphQL, no event loop), beside the reads they
    replace (``old``): the summary's scan of the daily cells summed in Python, the
    projection's sum of the hourly cells since the month began, and counting the model
    filter's records without an index on model (``NOT INDEXED``)."""
    until = loaded.end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - timedelta(days=30)
    month = floor_day(loaded.end).replace(day=1)
    org = loaded.fixture.organization_id
    engine = create_engine(f"sqlite:///{db_path}")

    def old_summary(conn: Any) -> None:
        sums: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
        statement = select(daily_t).where(
            daily_t.c.organization_id == org, daily_t.c.bucket >= since, daily_t.c.bucket < until
        )
        for row in conn.execute(statement):
            for group in (row.bucket, row.model, row.action, row.api_key_id):
                sums[group][0] += row.spend
                sums[group][1] += row.requests

    reads: dict[str, Any] = {
        "old: summary, daily cells summed in Python": old_summary,
        "old: projection, hourly cells since the 1st": lambda conn: conn.scalar(
            select(func.sum(hourly_t.c.spend)).where(
                hourly_t.c.organization_id == org,
                hourly_t.c.bucket >= month,
                hourly_t.c.bucket <= loaded.end,
            )
        ),
        "old: count model=, no index on model": lambda conn: conn.exec_driver_sql(
            "SELECT count(*) FROM usage_records NOT INDEXED"
            " WHERE organization_id = ? AND model = ?",
            (org, FILTER_MODEL),
        ).scalar(),
        "new: summary series (daily totals)": lambda conn: series(
            conn, daily_by_t, org, None, since, until
        ),
        "new: summary model/action/key GROUP BY": lambda conn: breakdown(
            conn,
            daily_by_t,
            org,
            None,
            [Dimension.MODEL, Dimension.ACTION, Dimension.API_KEY],
            since,
            until,
        ),
        "new: projection, days + today's hours": lambda conn: spent_since(
            conn, org, None, month, loaded.end
        ),
        "new: top 20 conversations, 30 days": lambda conn: breakdown(
            conn, daily_by_t, org, None, [Dimension.CONVERSATION], since, until, 20
        ),
        "new: totalCount model=": lambda conn: usage_count(
            conn, org, UsageFilter(model=FILTER_MODEL)
        ),
        "new: totalCount apiKeyId": lambda conn: usage_count(
            conn, org, UsageFilter(api_key_id=loaded.key_ids[3])
        ),
    }
    medians: dict[str, float] = {}
    with engine.connect() as conn:
        for name, read in reads.items():
            read(conn)  # warm the statement cache and the pages
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                read(conn)
                times.append((time.perf_counter() - started) * 1000)
            medians[name] = statistics.median(times)
            print(f"  SQL {name:<44} {medians[name]:8.2f} ms", flush=True)
    engine.dispose()
    return medians


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(
    loaded: Loaded, requests: int, warmup: int, budget: float
) -> dict[str, tuple[float, float, int]]:
    """Per operation: p50 and p95 in ms and the number of timed requests."""
    settings = loaded.fixture.settings.model_copy(
        update={"graphql_rate_per_second": 1_000_000.0, "graphql_burst": 1_000_000}
    )
    app = create_app(settings)
    token = issue_token(
        JWT_SECRET, org=ORG_SLUG, role=Role.OWNER, subject="bench", ttl=timedelta(hours=6)
    )
    results: dict[str, tuple[float, float, int]] = {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        for name, body in operations(loaded).items():
            for _ in range(warmup):
                check(name, await client.post("/graphql", json=body))
            times: list[float] = []
            deadline = time.perf_counter() + budget
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.post("/graphql", json=body)
                times.append((time.perf_counter() - started) * 1000)
                check(name, response)
                if time.perf_counter() > deadline:
                    break
            results[name] = (statistics.median(times), percentile(times, 95), len(times))
            print(
                f"  {name:<28} p50 {results[name][0]:8.2f} ms   p95 {results[name][1]:8.2f} ms"
                f"   ({len(times)} requests)",
                flush=True,
            )
    return results


def check(name: str, response: httpx.Response) -> None:
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        sys.exit(f"{name}: {response.status_code} {body}")
    organization = body["data"]["viewer"]["organization"]
    answer = organization.get("usage") or organization.get("usageSummary")
    if not answer or (
        "edges" in answer and len(answer["edges"]) != 50
    ):  # a filtered first page is full at both sizes
        sys.exit(f"{name}: unexpected answer {str(body)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--requests", type=int, default=200, help="timed requests per op")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--budget", type=float, default=90.0, help="at most this many seconds per op"
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the databases a run left in --workdir"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-analytics-"))
    workdir.mkdir(parents=True, exist_ok=True)

    end = datetime.now(UTC).replace(microsecond=0)
    figures: dict[int, dict[str, tuple[float, float, int]]] = {}
    sql: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        db_path = workdir / f"usage-{size}.db"
        if args.reuse:
            print(f"{size:,} records in {db_path}", flush=True)
            loaded = reopen(db_path)
        else:
            for path in (db_path, db_path.with_name(db_path.name + "-wal")):
                path.unlink(missing_ok=True)
            print(f"{size:,} records into {db_path} through the writer", flush=True)
            loaded = asyncio.run(load(db_path, size, end))
            print(f"  loaded in {loaded.seconds:.1f} s ({size / loaded.seconds:,.0f} records/s)")
        figures[size] = asyncio.run(measure(loaded, args.requests, args.warmup, args.budget))
        sql[size] = sql_timings(loaded, db_path)

    small, large = min(figures), max(figures)
    print(f"\nSQL medians, ms ({small:,} / {large:,} records)")
    for name in sql[large]:
        print(f"  {name:<48} {sql[small][name]:8.2f} / {sql[large][name]:8.2f}")
    print(f"\nsummary (p95 target < {TARGET_P95_MS:.0f} ms; {large:,} vs {small:,} records)")
    ok = True
    for name in figures[large]:
        p95_small, p95_large = figures[small][name][1], figures[large][name][1]
        ratio = p95_large / p95_small
        fast, flat = p95_large < TARGET_P95_MS, ratio <= TARGET_RATIO
        ok = ok and ((fast and flat) or name == TAGS)
        print(
            f"  {name:<28} p50 {figures[small][name][0]:7.2f} / {figures[large][name][0]:7.2f} ms"
            f"  p95 {p95_small:7.2f} / {p95_large:7.2f} ms  ratio {ratio:5.2f}x"
            f"  p95<50ms: {'met' if fast else 'NOT MET'}"
            f"  ratio<=2x: {'met' if flat else 'NOT MET'}"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
