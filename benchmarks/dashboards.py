"""Every query a dashboard polls or opens on load, through ``creditgraph serve``, at 10,000
and 1,000,000 usage records, with the response cache on and off, beside a bare
Starlette endpoint answering the same documents.

For each size a fresh SQLite database is loaded through the writer (``UsageJob``s)
under a ``FrozenClock`` walking through 60 days of billing time: 20 keys (a lifetime
quota and a one-day window each, some a 5-hour or 7-day one too), 8 models, 3
actions, tags. The organization is on the ``bytez-payg`` plan, has a dozen top-ups
and three alert rules (two of them fired). Then the operations of
``frontend-examples/operations/dashboard.graphql``, verbatim, are sent with a viewer's
JWT: ``Usage`` with every combination of the filters, ``UsageSummary`` as the
dashboards ask it (30 days by day).

Servers, each started as a user starts it (``benchmarks/load.py``): ``bare``, which
answers each operation with the document creditgraph gave (encoded per request),
``cached`` (creditgraph as it ships) and ``uncached``
(``CREDITGRAPH_GRAPHQL_CACHE_SECONDS=0``: every request read and executed, what one
costs right after a write made its answer stale); ``--before TREE`` adds creditgraph,
uncached, from another source tree. Per operation, alternating servers:

- one dashboard at a time: wrk with 1 connection, p50 and p95 (creditgraph's servers);
- 16 dashboards at once: wrk with 16 connections, requests/s and p95 (all servers).

    .venv/bin/python -m benchmarks.dashboards --workdir /tmp/cg-bench/dashboards
    .venv/bin/python -m benchmarks.dashboards --sizes 10000 --ops ApiKeys "Usage model"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from graphql import FragmentDefinitionNode, Node, OperationDefinitionNode, parse

from app.auth import Role, issue_token
from app.clock import FrozenClock
from app.ids import to_global_id
from app.keys.service import Caps
from app.main import create_app
from app.money import parse_usd
from app.operations import create_api_key
from app.pricing.book import Metered
from app.runtime import Runtime
from app.usage.ingest import UsageEvent, UsageJob
from app.usage.tables import UsageStatus
from benchmarks.bare_app import answer_key
from benchmarks.common import (
    JWT_SECRET,
    ORG_SLUG,
    ROOT,
    Fixture,
    copy_database,
    env_for,
    prepare,
    settings_for,
)
from benchmarks.load import (
    Medians,
    Result,
    Server,
    alternate,
    lua_string,
    machine,
    print_changed,
    serve_bare,
    serve_creditgraph,
    wrk,
)

CONTRACT = ROOT / "frontend-examples" / "operations" / "dashboard.graphql"
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
PLAN = "bytez-payg"
TOP_UPS = ["5", "20", "50", "99.99", "10", "25", "100", "15", "40", "60", "75", "30"]

# Targets (issue 16). Throughput at 16 dashboards, creditgraph over bare: uncached every
# operation >= 0.25x (Viewer 0.5x), cached the cacheable ones >= 0.7x. Latency of the
# usage log, the summary and the ledger: one at a time p95 < 25 ms at 1M records and
# at most 1.5x the 10k p95; 16 at once p95 < 100 ms.
UNCACHED_RATIO, VIEWER_RATIO, CACHED_RATIO = 0.25, 0.5, 0.7
ALONE_P95_MS, GROWTH, CROWD_P95_MS = 25.0, 1.5, 100.0
LATENCY_OPS = ("Usage", "UsageSummary", "Ledger")


def contract_operation(name: str) -> str:
    """Operation ``name`` of the contract file, verbatim, followed by the fragments it
    spreads (verbatim too): what a dashboard sends for it."""
    source = CONTRACT.read_text()
    document = parse(source)
    definitions = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
        and definition.name is not None
    }
    texts = {name: _text(source, definitions[name])}
    pending = [name]
    while pending:  # the fragments spread, and those they spread in turn
        for spread in re.findall(r"\.\.\.\s*([_A-Za-z]\w*)", texts[pending.pop()]):
            if spread != "on" and spread not in texts:
                texts[spread] = _text(source, definitions[spread])
                pending.append(spread)
    return "\n\n".join(texts.values())


def _text(source: str, node: Node) -> str:
    assert node.loc is not None
    return source[node.loc.start : node.loc.end]


@dataclass
class Loaded:
    fixture: Fixture
    key_ids: list[int]
    end: datetime  # billing time of the last batch


def key_caps(n: int) -> Caps:
    """Every key a quota and a one-day window; every 4th a 5-hour one, every 5th 7 days."""
    return Caps(
        quota=parse_usd("100000"),
        limit_5h=parse_usd("20000") if n % 4 == 0 else None,
        limit_1d=parse_usd("50000"),
        limit_7d=parse_usd("90000") if n % 5 == 0 else None,
    )


async def populate(db_path: Path, records: int, end: datetime) -> Loaded:
    """A fresh database with ``records`` usage records billed through the writer over the
    ``DAYS`` before ``end``; then top-ups and alert rules through the GraphQL API."""
    fixture = await prepare(db_path)
    start = end - timedelta(days=DAYS)
    clock = FrozenClock(start)
    runtime = await Runtime.start(fixture.settings, clock)
    try:
        await runtime.subscriptions.change(fixture.organization_id, PLAN, actor="cli")
        key_ids = [fixture.api_key_id]
        for n in range(1, KEYS):
            key = await create_api_key(
                runtime, fixture.organization_id, f"key {n}", caps=key_caps(n)
            )
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
                            "conversation": f"c{i % KEYS}-{i // (KEYS * 20)}",
                        },
                    ),
                    runtime.prices,
                )
                for i in range(first, min(first + batch, records))
            ]
            outcomes = await runtime.writer.submit(jobs)
            assert all(o.outcome == "billed" for o in outcomes), outcomes[0]
            if b % 200 == 199:
                print(f"  {first + len(jobs):>9,} records", flush=True)
        print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await runtime.stop()
    await _billing_history(fixture, key_ids, clock.at)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    return Loaded(fixture, key_ids, clock.at)


async def _billing_history(fixture: Fixture, key_ids: list[int], at: datetime) -> None:
    """Top-ups (the development provider settles them at once) and alert rules, through
    the GraphQL API as an owner."""
    app = create_app(fixture.settings, FrozenClock(at))
    token = issue_token(
        JWT_SECRET, org=ORG_SLUG, role=Role.OWNER, subject="bench", ttl=timedelta(hours=1)
    )
    top_up = (
        "mutation($a: Decimal!) { createTopUp(input: {amountUsd: $a}) { userErrors { message } } }"
    )
    mutations: list[tuple[str, dict[str, Any]]] = [(top_up, {"a": a}) for a in TOP_UPS]
    rule = (
        "mutation($input: CreateAlertRuleInput!) "
        "{ createAlertRule(input: $input) { userErrors { message } } }"
    )
    for rule_input in (
        {"kind": "BALANCE_BELOW", "threshold": "10000000"},  # fires: the balance is lower
        {"kind": "DAILY_SPEND_ABOVE", "threshold": "1"},  # fires
        {
            "kind": "KEY_CAP_PERCENT",
            "threshold": "90",
            "apiKeyId": to_global_id("ApiKey", key_ids[0]),
        },
    ):
        mutations.append((rule, {"input": rule_input}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        for query, variables in mutations:
            body = (
                await client.post("/graphql", json={"query": query, "variables": variables})
            ).json()
            payload = next(iter((body.get("data") or {"": None}).values()))
            if "errors" in body or payload is None or payload["userErrors"]:
                sys.exit(f"setting up the billing history failed: {body}")


def reopen(db_path: Path) -> Loaded:
    """A database an earlier run populated (``--reuse``)."""
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
    return Loaded(fixture, key_ids, datetime.fromisoformat(last).replace(tzinfo=UTC))


def operations(loaded: Loaded) -> dict[str, dict[str, Any]]:
    """Request bodies by label: the contract's operations, verbatim, as dashboards send
    them; the usage log with every combination of its filters."""
    until = loaded.end.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    day_ago = (loaded.end - timedelta(days=1)).isoformat()
    key = to_global_id("ApiKey", loaded.key_ids[3])
    with sqlite3.connect(loaded.fixture.settings.database_url.split("///", 1)[1]) as conn:
        (request_id,) = conn.execute(
            "SELECT request_id FROM usage_records ORDER BY id DESC LIMIT 1 OFFSET 500"
        ).fetchone()
    filters: dict[str, dict[str, Any] | None] = {
        "": None,
        " key": {"apiKeyId": key},
        " model": {"model": "gpt-5-mini"},
        " action": {"action": "api_request"},
        " key+model": {"apiKeyId": key, "model": "gpt-5-mini"},
        " key+action": {"apiKeyId": key, "action": "api_request"},
        " model+action": {"model": "gpt-5-mini", "action": "api_request"},
        " key+model+action": {"apiKeyId": key, "model": "gpt-5-mini", "action": "api_request"},
        " requestId": {"requestId": request_id},
        " since": {"since": day_ago},
        " key+since": {"apiKeyId": key, "since": day_ago},
        " model+since": {"model": "gpt-5-mini", "since": day_ago},
    }

    def body(name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"query": contract_operation(name), "operationName": name}
        if variables is not None:
            request["variables"] = variables
        return request

    ops = {name: body(name) for name in ("Viewer", "WalletOverview", "Ledger", "ApiKeys", "Plans")}
    ops["BillingTransactions"] = body("BillingTransactions")
    ops["Alerts"] = body("Alerts")
    ops["UsageSummary"] = body(
        "UsageSummary",
        {
            "since": (until - timedelta(days=30)).isoformat(),
            "until": until.isoformat(),
            "granularity": "DAY",
        },
    )
    for label, usage_filter in filters.items():
        variables: dict[str, Any] = {"first": 50}
        if usage_filter is not None:
            variables["filter"] = usage_filter
        ops["Usage" + label] = body("Usage", variables)
    return ops


def capture(server: Server, ops: dict[str, dict[str, Any]], token: str, path: Path) -> None:
    """creditgraph's answer to each operation (checked: no errors, a full first page where
    one is expected) into ``path``, for the bare server to give."""
    answers = {}
    for label, request in ops.items():
        response = httpx.post(
            f"{server.url}/graphql", json=request, headers={"Authorization": f"Bearer {token}"}
        )
        document = response.json()
        if response.status_code != 200 or "errors" in document:
            sys.exit(f"{label}: {response.status_code} {json.dumps(document)[:500]}")
        answers[answer_key(request["operationName"], request.get("variables"))] = document
    path.write_text(json.dumps(answers))


def viewer_token() -> str:
    """What the dashboards send: a viewer's JWT of the benchmark organization."""
    return issue_token(
        JWT_SECRET, org=ORG_SLUG, role=Role.VIEWER, subject="bench", ttl=timedelta(hours=6)
    )


def script(request: dict[str, Any], token: str) -> str:
    return f"""
wrk.method = "POST"
wrk.path = "/graphql"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. {lua_string(token)}
wrk.body = {lua_string(json.dumps(request))}
"""


@dataclass
class Figures:
    alone: dict[str, Medians]  # by server: one connection
    crowd: dict[str, Medians]  # by server: 16 connections


def measure(
    servers: list[Server],
    ops: dict[str, dict[str, Any]],
    token: str,
    args: argparse.Namespace,
) -> dict[str, Figures]:
    creditgraphs = [s for s in servers if s.name != "bare"]
    figures = {}
    for label, request in ops.items():
        if args.ops and not any(label == op or label.startswith(op + " ") for op in args.ops):
            continue
        text = script(request, token)
        print(f"\n{label}", flush=True)
        for server in servers:  # warm-up
            wrk(server, text, connections=4, duration=1)

        def alone(server: Server, text: str = text) -> Result:
            return wrk(server, text, connections=1, duration=args.alone_seconds)

        def crowd(server: Server, text: str = text) -> Result:
            return wrk(server, text, connections=16, duration=args.crowd_seconds)

        print("  one dashboard:")
        by_alone = alternate(creditgraphs, alone, args.rounds)
        print("  16 dashboards:")
        by_crowd = alternate(servers, crowd, args.rounds)
        figures[label] = Figures(by_alone, by_crowd)
    return figures


def cacheable(label: str) -> bool:
    """The operations the response cache may answer (``app/graphql/response_cache.py``)."""
    return label.split(" ")[0] in ("Viewer", "WalletOverview")


def report(size: int, figures: dict[str, Figures]) -> list[str]:
    """Print one size's table; the targets it misses."""
    missed = []
    print(
        f"\n{size:,} records: one dashboard p50/p95 ms; 16 dashboards req/s (ratio to bare), p95 ms"
    )
    names = [n for n in next(iter(figures.values())).alone]
    header = "  ".join(f"{n + ' p50/p95':>17}" for n in names)
    print(
        f"  {'operation':<22} {header}  {'bare req/s':>10}  " + "  ".join(f"{n:>22}" for n in names)
    )
    for label, f in figures.items():
        bare = f.crowd["bare"]
        alone = "  ".join(f"{f.alone[n].p50_ms:8.2f}/{f.alone[n].p95_ms:8.2f}" for n in names)
        crowd = "  ".join(
            f"{f.crowd[n].rps:7.0f} ({f.crowd[n].rps / bare.rps:4.2f}x) {f.crowd[n].p95_ms:6.1f}"
            for n in names
        )
        print(f"  {label:<22} {alone}  {bare.rps:10.0f}  {crowd}")
        uncached = f.crowd["uncached"].rps / bare.rps
        need = VIEWER_RATIO if label == "Viewer" else UNCACHED_RATIO
        if uncached < need:
            missed.append(f"{size:,} {label}: uncached {uncached:.2f}x bare < {need}x")
        cached = f.crowd["cached"].rps / bare.rps
        if cacheable(label) and cached < CACHED_RATIO:
            missed.append(f"{size:,} {label}: cached {cached:.2f}x bare < {CACHED_RATIO}x")
        if label.split(" ")[0] in LATENCY_OPS:
            for server in ("cached", "uncached"):
                if f.alone[server].p95_ms >= ALONE_P95_MS:
                    missed.append(
                        f"{size:,} {label}: {server} alone p95 {f.alone[server].p95_ms:.1f} ms"
                    )
                if f.crowd[server].p95_ms >= CROWD_P95_MS:
                    missed.append(
                        f"{size:,} {label}: {server} 16 at once p95 {f.crowd[server].p95_ms:.1f} ms"
                    )
    return missed


def growth(all_figures: dict[int, dict[str, Figures]]) -> list[str]:
    """The latency operations' p95 at the largest size over the smallest."""
    small, large = min(all_figures), max(all_figures)
    missed = []
    if small == large:
        return missed
    print(f"\np95 one at a time, {large:,} over {small:,} records (target <= {GROWTH}x):")
    for label, f in all_figures[large].items():
        if label.split(" ")[0] not in LATENCY_OPS or label not in all_figures[small]:
            continue
        ratio = f.alone["uncached"].p95_ms / all_figures[small][label].alone["uncached"].p95_ms
        print(f"  {label:<22} {ratio:5.2f}x")
        if ratio > GROWTH:
            missed.append(f"{label}: {ratio:.2f}x its {small:,}-record p95")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--ops", nargs="+", help="labels (or their first word) to measure")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alone-seconds", type=float, default=3.0)
    parser.add_argument("--crowd-seconds", type=float, default=4.0)
    parser.add_argument(
        "--before", type=Path, help="also serve creditgraph (uncached) from this tree"
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--reuse", action="store_true", help="use the databases of an earlier run")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-dashboards-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine())
    print_changed()

    end = datetime.now(UTC).replace(microsecond=0)
    token = viewer_token()
    all_figures: dict[int, dict[str, Figures]] = {}
    missed: list[str] = []
    for size in args.sizes:
        db_path = workdir / f"dashboards-{size}.db"
        if args.reuse and db_path.exists():
            print(f"\n{size:,} records in {db_path}", flush=True)
            loaded = reopen(db_path)
        else:
            for path in workdir.glob(f"dashboards-{size}*"):
                path.unlink()
            print(f"\n{size:,} records into {db_path} through the writer", flush=True)
            loaded = asyncio.run(populate(db_path, size, end))
        ops = operations(loaded)
        # Each server its own copy: their periodic jobs and caches stay their own.
        copies = {
            name: workdir / f"dashboards-{size}-{name}.db"
            for name in ("cached", "uncached", "before")
        }
        servers: list[Server] = []
        try:
            copy_database(db_path, copies["cached"])
            cached = serve_creditgraph("cached", env_for(copies["cached"]), workdir)
            servers.append(cached)
            answers = workdir / f"answers-{size}.json"
            capture(cached, ops, token, answers)
            bare_env = loaded.fixture.env | {"BENCH_GRAPHQL_ANSWERS": str(answers)}
            servers.insert(0, serve_bare(bare_env, workdir))
            copy_database(db_path, copies["uncached"])
            off = {"CREDITGRAPH_GRAPHQL_CACHE_SECONDS": "0"}
            servers.append(
                serve_creditgraph("uncached", env_for(copies["uncached"]) | off, workdir)
            )
            if args.before is not None:
                copy_database(db_path, copies["before"])
                env = env_for(copies["before"]) | off
                servers.append(serve_creditgraph("before", env, workdir, tree=args.before))
            all_figures[size] = measure(servers, ops, token, args)
        finally:
            for server in servers:
                server.stop()
        missed += report(size, all_figures[size])
    missed += growth(all_figures)
    print("\ntargets missed:" if missed else "\nevery target met")
    for line in missed:
        print(f"  {line}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
