"""PostgreSQL with several instances: two runtimes on one database, each with its own
writer and connections, as two server processes would have. Skipped unless
CREDITGRAPH_TEST_DATABASE_URL names a server (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import maintenance
from app.auth import ConfigurationError
from app.cli import main as cli
from app.clock import FrozenClock
from app.ledger.book import entries_t
from app.migrate import pending
from app.money import parse_usd
from app.operations import adjust
from app.runtime import Runtime
from app.settings import Settings
from tests.conftest import JWT_SECRET, RUN_ID, Harness, PostgresServer, running_app

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def settings(postgres_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=postgres_url,
        state_dir=tmp_path / "state",
        jwt_secret=JWT_SECRET,
        run_jobs=False,
        # Small batches: many transactions from each instance, interleaved.
        writer_batch_max=10,
    )


@pytest.fixture
async def instances(settings: Settings) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two instances on the same database, sharing a frozen clock."""
    clock = FrozenClock(T0)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_app(settings, clock))
        second = await stack.enter_async_context(running_app(settings, clock))
        yield first, second


async def test_concurrent_holds_across_instances_take_exactly_what_fits(
    instances: tuple[Harness, Harness],
) -> None:
    first, second = instances
    org = await first.org(grant_usd="1")
    key = await first.key(org)
    # 300 holds of $0.01 on $1.00, half through each instance, all at once.
    responses = await asyncio.gather(
        *(
            (first if n % 2 else second).authorize(key, f"req-{n}", hold_usd="0.01")
            for n in range(300)
        )
    )
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 100
    assert statuses.count(402) == 200
    assert await first.balance(org) == (1_000_000, 1_000_000)
    assert await first.books() == []


async def test_usage_for_one_request_ingested_by_both_instances_bills_once(
    instances: tuple[Harness, Harness],
) -> None:
    first, second = instances
    org = await first.org(grant_usd="1")
    key = await first.key(org)
    key_id = (await first.authorize(key, "probe")).json()["api_key_id"]
    event = {"api_key_id": key_id, "model": "gpt-5-mini", "prompt_tokens": 10_000}
    # The same 50 request ids sent to both instances at once: each bills exactly once.
    results = await asyncio.gather(
        *(
            harness.usage(org, event | {"request_id": f"r-{n}"})
            for n in range(50)
            for harness in (first, second)
        )
    )
    outcomes = sorted(result["outcome"] for (result,) in results)
    assert outcomes.count("billed") == 50
    assert await first.balance(org) == (1_000_000 - 50 * 2_500, 0)
    assert await first.books() == []


async def _expiring_lots(harness: Harness, orgs: int) -> None:
    """``orgs`` organizations with a $0.01 lot each that expires at T0 + 1 day."""
    for n in range(orgs):
        org = await harness.org(slug=f"org-{n}")
        await adjust(
            harness.runtime,
            org.id,
            parse_usd("0.01"),
            "promo",
            actor="test",
            expires_at=T0 + timedelta(days=1),
        )


async def _expiry_entries(harness: Harness) -> int:
    async with harness.runtime.db.reader.connect() as conn:
        query = select(func.count()).where(entries_t.c.kind == "expiry")
        return int((await conn.execute(query)).scalar_one())


async def test_periodic_jobs_skip_while_another_instance_runs_them(
    instances: tuple[Harness, Harness], settings: Settings
) -> None:
    first, _ = instances
    await _expiring_lots(first, 3)
    clock = first.runtime.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(days=1))

    other = create_async_engine(settings.database_url)
    try:
        async with other.begin() as conn:  # another instance, in the middle of its sweep
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": maintenance.JOBS_LOCK}
            )
            assert await maintenance.run_once(first.runtime) is None
            assert await _expiry_entries(first) == 0
    finally:
        await other.dispose()
    swept = await maintenance.run_once(first.runtime)
    assert swept is not None
    assert swept.lots_expired == 3
    assert await _expiry_entries(first) == 3


async def test_periodic_jobs_run_by_two_instances_at_once_sweep_once(
    instances: tuple[Harness, Harness],
) -> None:
    first, second = instances
    await _expiring_lots(first, 20)
    clock = first.runtime.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(days=1))

    swept = await asyncio.gather(
        maintenance.run_once(first.runtime), maintenance.run_once(second.runtime)
    )
    ran = [result for result in swept if result is not None]
    assert len(ran) == 1
    assert ran[0].lots_expired == 20
    assert await _expiry_entries(first) == 20
    assert await first.books() == []


@pytest.fixture
def empty_postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A database of its own that nothing migrated."""
    name = f"cg_{RUN_ID}_{uuid.uuid4().hex[:12]}_empty"
    postgres.create(name)
    yield postgres.url_of(name)
    postgres.drop(name).result()


async def test_production_waits_for_the_migrate_command(
    empty_postgres_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = settings.model_copy(
        update={
            "database_url": empty_postgres_url,
            "environment": "production",
            "key_encryption_key": Fernet.generate_key().decode(),
        }
    )
    engine = create_async_engine(empty_postgres_url)
    try:
        assert await pending(engine)
        # Production never migrates by itself: it refuses to start on an old schema.
        with pytest.raises(ConfigurationError, match="creditgraph migrate"):
            await Runtime.start(production)
        assert await pending(engine)

        monkeypatch.setenv("CREDITGRAPH_DATABASE_URL", empty_postgres_url)
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["migrate"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
        assert not await pending(engine)
    finally:
        await engine.dispose()
    runtime = await Runtime.start(production)
    await runtime.stop()
