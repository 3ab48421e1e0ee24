"""``creditgraph serve --demo``: an organization ``demo`` on ByteSpike Pro, with keys and
30 days of usage.

The usage goes through the real writer under a clock that walks through the 30 days,
so lots, windows, spend marks and the ledger are exactly what real traffic leaves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.clock import FrozenClock
from app.keys.service import Caps, CreatedKey
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.orgs.service import OrgRef
from app.pricing.book import Metered
from app.runtime import Runtime
from app.settings import Settings
from app.usage.ingest import UsageEvent, UsageJob
from app.usage.tables import UsageStatus

DAYS = 30
CALLS_PER_DAY = 120
# (model, share of traffic, typical prompt tokens, typical completion tokens)
TRAFFIC = [
    ("claude-sonnet-4-6", 0.35, 2_400, 600),
    ("gpt-5-5", 0.25, 1_800, 500),
    ("gemini-3-flash", 0.2, 3_000, 400),
    ("deepseek-v4-pro", 0.15, 2_000, 800),
    ("claude-opus-4-6", 0.05, 4_000, 1_200),
]


@dataclass(frozen=True, slots=True)
class Demo:
    org: OrgRef
    keys: dict[str, CreatedKey]


async def seed(settings: Settings, progress: Callable[[int, int], None]) -> Demo | None:
    """Seed the demo organization unless it exists; ``progress(done, total)`` per day."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS)
    clock = FrozenClock(start)
    runtime = await Runtime.start(settings.model_copy(update={"run_jobs": False}), clock)
    try:
        if await runtime.orgs.by_slug("demo") is not None:
            return None
        # On ByteSpike Pro, so the dashboards' plan and quote (+5% boost) show something.
        org = await create_organization(
            runtime, slug="demo", name="Demo AI Labs", grant=parse_usd("500"), plan="bytespike-pro"
        )
        keys = {
            "production": await create_api_key(runtime, org.id, "production"),
            "claude-agents": await create_api_key(
                runtime,
                org.id,
                "claude agents",
                group="claude-default",
                caps=Caps(
                    quota=parse_usd("150"), limit_5h=parse_usd("5"), limit_1d=parse_usd("20")
                ),
            ),
            "staging": await create_api_key(
                runtime,
                org.id,
                "staging (Ada)",
                owner="ada@demo.test",
                caps=Caps(limit_1d=parse_usd("2")),
            ),
        }
        rng = random.Random(7)
        for day in range(DAYS):
            jobs = []
            for n in range(CALLS_PER_DAY):
                clock.advance(timedelta(seconds=rng.randint(60, 86_400 // CALLS_PER_DAY)))
                jobs.append(_call(runtime, org, keys, rng, f"demo-{day}-{n}", clock.now()))
            await runtime.writer.submit(jobs)
            clock.at = start + timedelta(days=day + 1)
            progress(day + 1, DAYS)
        return Demo(org, keys)
    finally:
        await runtime.stop()


def _call(
    runtime: Runtime,
    org: OrgRef,
    keys: dict[str, CreatedKey],
    rng: random.Random,
    request_id: str,
    at: datetime,
) -> UsageJob:
    model, _, prompt, completion = rng.choices(TRAFFIC, weights=[t[1] for t in TRAFFIC])[0]
    key = (
        keys["claude-agents"]
        if model.startswith("claude") and rng.random() < 0.5
        else (keys["staging"] if rng.random() < 0.1 else keys["production"])
    )
    failed = rng.random() < 0.03
    event = UsageEvent(
        request_id=request_id,
        api_key_id=key.id,
        model=model,
        action=None,
        metered=Metered(
            prompt_tokens=int(prompt * rng.uniform(0.2, 2.0)),
            completion_tokens=int(completion * rng.uniform(0.2, 2.0)),
        ),
        status=UsageStatus.FAILED if failed else UsageStatus.SUCCEEDED,
        occurred_at=at,
        tags={"agent": rng.choice(["support-bot", "coder", "researcher"])},
    )
    return UsageJob(org.id, event, runtime.prices)
