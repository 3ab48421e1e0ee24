"""Property: whatever mix of grants, expiring credits, holds, usage and failures runs,
every stored counter equals what the ledger replays to (``creditgraph verify``).

SQLite only: each example needs a database of its own; the same ledger code runs on
PostgreSQL through every test taking ``settings``."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.clock import FrozenClock
from app.gateway.authorize import AuthorizeJob, HoldEstimate
from app.keys.service import Caps, hash_secret
from app.ledger.jobs import ExpireHolds, ExpireLots, PostEntry
from app.ledger.tables import EntryKind
from app.ledger.verify import verify
from app.operations import create_api_key, create_organization
from app.pricing.book import Metered
from app.runtime import Runtime
from app.settings import Settings
from app.usage.ingest import UsageEvent, UsageJob
from app.usage.tables import UsageStatus

T0 = datetime(2026, 11, 2, tzinfo=UTC)

grant = st.tuples(st.just("grant"), st.integers(1, 5_000_000), st.sampled_from([None, 1, 3]))
hold = st.tuples(st.just("hold"), st.integers(0, 2_000_000), st.integers(0, 3))
use = st.tuples(
    st.just("use"), st.integers(0, 400_000), st.integers(0, 3), st.sampled_from(["ok", "failed"])
)
tick = st.tuples(st.just("tick"), st.integers(1, 3 * 86_400))
operations = st.lists(st.one_of(grant, hold, use, tick), min_size=1, max_size=40)


async def _scenario(ops: list[tuple[object, ...]], directory: Path) -> list[str]:
    clock = FrozenClock(T0)
    runtime = await Runtime.start(
        Settings(
            database_url=f"sqlite+aiosqlite:///{directory / 'p.db'}",
            state_dir=directory,
            jwt_secret="x" * 32,
            run_jobs=False,
            hold_ttl_seconds=3600,
        ),
        clock,
    )
    try:
        org = await create_organization(runtime, slug="p", grant=2_000_000)
        created = await create_api_key(
            runtime, org.id, "k", caps=Caps(quota=20_000_000, limit_5h=3_000_000)
        )
        secret_hash = hash_secret(created.secret)
        for n, op in enumerate(ops):
            match op:
                case ("grant", int(amount), days):
                    expires = None if days is None else clock.now() + timedelta(days=int(days))
                    await runtime.writer.run(
                        PostEntry(org.id, EntryKind.TOP_UP, amount, f"t{n}", expires_at=expires)
                    )
                case ("hold", int(amount), int(request)):
                    await runtime.writer.run(
                        AuthorizeJob(
                            org.id,
                            created.id,
                            secret_hash,
                            "gpt-5-mini",
                            f"r{request}",
                            HoldEstimate(credits=amount),
                            runtime.prices,
                            runtime.hold_ttl,
                            runtime.plans,
                        )
                    )
                case ("use", int(tokens), int(request), status):
                    event = UsageEvent(
                        f"r{request}",
                        created.id,
                        "gpt-5-mini",
                        None,
                        Metered(prompt_tokens=tokens, completion_tokens=tokens),
                        UsageStatus.SUCCEEDED if status == "ok" else UsageStatus.FAILED,
                        None,
                    )
                    await runtime.writer.run(UsageJob(org.id, event, runtime.prices))
                case ("tick", int(seconds)):
                    clock.advance(timedelta(seconds=seconds))
                    await runtime.writer.submit(
                        [ExpireLots([org.id]), ExpireHolds(list(range(1, 50)))]
                    )
        async with runtime.db.reader.connect() as conn:
            return await verify(conn)
    finally:
        await runtime.stop()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_every_history_verifies(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        assert asyncio.run(_scenario(ops, Path(directory))) == []
