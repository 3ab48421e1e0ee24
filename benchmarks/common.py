"""Shared setup for the benchmarks: a fresh SQLite database with an org, a key and a token."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from app.auth import Role, issue_token
from app.ids import to_global_id
from app.keys.service import Caps
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.pricing.book import Metered, PriceBook
from app.runtime import Runtime
from app.settings import Settings
from app.usage.ingest import UsageEvent, UsageJob
from app.usage.tables import UsageStatus

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
ORG_SLUG = "bench"
GRANT_USD = "1000000"

# The ingestion benchmarks bill this call, over and over, to one key.
MODEL = "claude-sonnet-4-6"
ACTION = "llm_inference"  # the price book's action for MODEL, billed when none is given
METERED = Metered(prompt_tokens=1000, completion_tokens=200)


def usage_jobs(org_id: int, key_id: int, prices: PriceBook, ids: list[str]) -> list[UsageJob]:
    """One writer job per request id: the benchmark call, as a server builds it."""
    return [
        UsageJob(
            org_id,
            UsageEvent(
                request_id=request_id,
                api_key_id=key_id,
                model=MODEL,
                action=None,
                metered=METERED,
                status=UsageStatus.SUCCEEDED,
                occurred_at=None,
            ),
            prices,
        )
        for request_id in ids
    ]


def breakdown_rows(key_id: int) -> list[tuple[int, str, str]]:
    """The (scope, dimension, value) breakdown rollup rows a batch of the benchmark call
    adds to (``app.usage.rollups``): by key, and total, model and action for the
    organization (scope 0) and for the key; the baselines upsert them as the writer does."""
    return [(0, "api_key", str(key_id))] + [
        (scope, dimension, value)
        for scope in (0, key_id)
        for dimension, value in (("total", ""), ("model", MODEL), ("action", ACTION))
    ]


@dataclass(frozen=True)
class Fixture:
    """What a benchmark needs to drive a prepared database."""

    settings: Settings
    env: dict[str, str]
    organization_id: int
    api_key_id: int
    api_key_global_id: str
    service_token: str
    api_key_secret: str = ""


def settings_for(db_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        state_dir=db_path.parent / "state",
        jwt_secret=JWT_SECRET,
        run_jobs=False,
    )


def env_for(db_path: Path) -> dict[str, str]:
    """The documented CREDITGRAPH_* environment of a process using ``db_path``: its
    database, state directory and JWT secret; everything else at its default."""
    return {
        **os.environ,
        "CREDITGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "CREDITGRAPH_STATE_DIR": str(db_path.parent / "state"),
        "CREDITGRAPH_JWT_SECRET": JWT_SECRET,
    }


# The benchmark key's caps: a lifetime quota and a one-day window, as gateways' keys
# usually have (authorize checks both), too large for any run to reach.
KEY_CAPS = Caps(quota=parse_usd("500000"), limit_1d=parse_usd("400000"))


async def prepare(db_path: Path) -> Fixture:
    """Migrate a fresh database; create an org with a large grant, a key with
    ``KEY_CAPS`` and a service JWT."""
    settings = settings_for(db_path)
    runtime = await Runtime.start(settings)
    try:
        org = await create_organization(runtime, slug=ORG_SLUG, grant=parse_usd(GRANT_USD))
        key = await create_api_key(runtime, org.id, "benchmark key", caps=KEY_CAPS)
    finally:
        await runtime.stop()
    token = issue_token(
        JWT_SECRET, org=ORG_SLUG, role=Role.SERVICE, subject="bench", ttl=timedelta(hours=6)
    )
    return Fixture(
        settings,
        env_for(db_path),
        org.id,
        key.id,
        to_global_id("ApiKey", key.id),
        token,
        key.secret,
    )


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite database, its WAL included (SQLite's backup)."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def verify(db_path: Path) -> bool:
    """Run ``creditgraph verify`` on ``db_path``, print its output; True when it passes."""
    cli = Path(sys.executable).parent / "creditgraph"
    result = subprocess.run(
        [str(cli), "verify"],
        env=env_for(db_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    print(f"creditgraph verify ({db_path}): exit {result.returncode}: {output}")
    return result.returncode == 0


def median(values: list[float]) -> float:
    return statistics.median(values)
