"""``creditgraph serve --demo``: an organization ``demo`` on ByteSpike Enterprise, with
keys, 30 days of usage, a saved card with auto-reload, and a low-balance alert.

The usage goes through the real writer under a clock that walks through the 30 days,
so lots, windows, spend marks and the ledger are exactly what real traffic leaves. The
live traffic after it (``app.demo_traffic``) draws its calls from the same mix.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.alerts.tables import AlertKind
from app.clock import FrozenClock
from app.keys.service import Caps, CreatedKey
from app.ledger.state import keys_t
from app.money import format_usd, parse_usd
from app.operations import create_api_key, create_organization, rotate_api_key
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
AGENTS = ("support-bot", "coder", "researcher")
CONVERSATIONS = 8  # per agent: the dashboards' "by conversation" ranks them
FAILED_SHARE = 0.03
# A call uses 0.2 to 2 times the typical tokens; the gateway holds for the most.
MOST_TOKENS = 2.0
OWNER = "owner@demo.test"
# The keys by the names the printout and the traffic use, and their names in the org.
KEY_NAMES = {
    "production": "production",
    "claude-agents": "claude agents",
    "staging": "staging (Ada)",
}

# Money, chosen so that the live traffic's default rate (2 to 3 USD a minute) crosses
# the alert within minutes of a fresh seed and auto-reload follows: the opening grant
# and a first top-up leave about 26 USD after the 30 days. The plan is Enterprise: Pro's
# and Max's 12-hour message windows would refuse every call after a few minutes of it.
GRANT = parse_usd("60")
FIRST_TOP_UP = parse_usd("25")  # through the fake provider, which saves the card
ALERT_BELOW = parse_usd("25")
RELOAD_BELOW = parse_usd("20")
RELOAD_AMOUNT = parse_usd("25")
RELOAD_MONTHLY_MAX = parse_usd("10000")


@dataclass(frozen=True, slots=True)
class Demo:
    org: OrgRef
    # Working secrets: made now, or rotated now when the organization already existed.
    keys: dict[str, CreatedKey]
    seeded: bool


@dataclass(frozen=True, slots=True)
class Call:
    """One simulated gateway call: which demo key, model and tokens, and its outcome."""

    key: str  # a name in KEY_NAMES
    model: str
    prompt_tokens: int
    completion_tokens: int
    failed: bool
    tags: dict[str, str]

    @property
    def most_tokens(self) -> tuple[int, int]:
        """The prompt and completion tokens the gateway holds for before the call."""
        prompt, completion = _TYPICAL[self.model]
        return int(prompt * MOST_TOKENS), int(completion * MOST_TOKENS)


_TYPICAL = {model: (prompt, completion) for model, _, prompt, completion in TRAFFIC}


def draw(rng: random.Random) -> Call:
    """A call from the demo's mix: claude models half on the claude-agents key, a tenth
    of the rest on staging, 3% failing, tagged with an agent and its conversation."""
    model, _, prompt, completion = rng.choices(TRAFFIC, weights=[t[1] for t in TRAFFIC])[0]
    key = (
        "claude-agents"
        if model.startswith("claude") and rng.random() < 0.5
        else ("staging" if rng.random() < 0.1 else "production")
    )
    agent = rng.choice(AGENTS)
    return Call(
        key,
        model,
        int(prompt * rng.uniform(0.2, MOST_TOKENS)),
        int(completion * rng.uniform(0.2, MOST_TOKENS)),
        rng.random() < FAILED_SHARE,
        {"agent": agent, "conversation": f"{agent}-{rng.randrange(CONVERSATIONS) + 1}"},
    )


async def seed(settings: Settings, progress: Callable[[int, int], None]) -> Demo:
    """Seed the demo organization, or rotate its keys when it exists (their secrets are
    kept hashed only); ``progress(done, total)`` per day seeded."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS)
    clock = FrozenClock(start)
    runtime = await Runtime.start(settings.model_copy(update={"run_jobs": False}), clock)
    try:
        found = await runtime.orgs.by_slug("demo")
        if found is not None:
            clock.at = datetime.now(UTC)
            return Demo(found, await _rotate_keys(runtime, found), seeded=False)
        return await _seed(runtime, clock, start, progress)
    finally:
        await runtime.stop()


async def _seed(
    runtime: Runtime, clock: FrozenClock, start: datetime, progress: Callable[[int, int], None]
) -> Demo:
    # Enterprise is assigned by an operator, as `creditgraph plan assign` does.
    org = await create_organization(
        runtime, slug="demo", name="Demo AI Labs", grant=GRANT, plan="bytespike-enterprise"
    )
    keys = {
        "production": await create_api_key(runtime, org.id, KEY_NAMES["production"]),
        "claude-agents": await create_api_key(
            runtime,
            org.id,
            KEY_NAMES["claude-agents"],
            group="claude-default",
            caps=Caps(quota=parse_usd("150"), limit_5h=parse_usd("5"), limit_1d=parse_usd("20")),
        ),
        "staging": await create_api_key(
            runtime,
            org.id,
            KEY_NAMES["staging"],
            owner="ada@demo.test",
            caps=Caps(limit_1d=parse_usd("2")),
        ),
    }
    payments = runtime.payments
    # Only the fake provider: the demo never charges a real card.
    card = payments.provider is not None and payments.provider.settles_at_once
    if card:
        quote = await payments.quote(org.id, amount_usd=format_usd(FIRST_TOP_UP))
        await payments.start_top_up(org.id, quote, OWNER)
    rng = random.Random(7)
    for day in range(DAYS):
        jobs = []
        for n in range(CALLS_PER_DAY):
            clock.advance(timedelta(seconds=rng.randint(60, 86_400 // CALLS_PER_DAY)))
            jobs.append(_job(runtime, org, keys, draw(rng), f"demo-{day}-{n}", clock.now()))
        await runtime.writer.submit(jobs)
        clock.at = start + timedelta(days=day + 1)
        progress(day + 1, DAYS)
    if card:
        changes = {
            "enabled": True,
            "threshold": RELOAD_BELOW,
            "amount": RELOAD_AMOUNT,
            "monthly_max": RELOAD_MONTHLY_MAX,
        }
        await payments.update_auto_reload(org.id, changes, actor=OWNER)
    await runtime.alerts.create_rule(org.id, AlertKind.BALANCE_BELOW, ALERT_BELOW, actor=OWNER)
    return Demo(org, keys, seeded=True)


async def _rotate_keys(runtime: Runtime, org: OrgRef) -> dict[str, CreatedKey]:
    """New secrets for the demo keys still active (a key revoked in the console stays
    revoked and gets no traffic)."""
    async with runtime.db.reader.connect() as conn:
        rows = await conn.execute(
            select(keys_t.c.id, keys_t.c.name).where(
                keys_t.c.organization_id == org.id,
                keys_t.c.name.in_(KEY_NAMES.values()),
                keys_t.c.revoked_at.is_(None),
            )
        )
        ids = {row.name: row.id for row in rows}
    return {
        key: await rotate_api_key(runtime, org.id, ids[name], actor="demo")
        for key, name in KEY_NAMES.items()
        if name in ids
    }


def _job(
    runtime: Runtime,
    org: OrgRef,
    keys: dict[str, CreatedKey],
    call: Call,
    request_id: str,
    at: datetime,
) -> UsageJob:
    event = UsageEvent(
        request_id=request_id,
        api_key_id=keys[call.key].id,
        model=call.model,
        action=None,
        metered=Metered(prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens),
        status=UsageStatus.FAILED if call.failed else UsageStatus.SUCCEEDED,
        occurred_at=at,
        tags=call.tags,
    )
    return UsageJob(org.id, event, runtime.prices)
