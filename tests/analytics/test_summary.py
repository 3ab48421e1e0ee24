"""usageSummary from the rollups equals sums over the raw usage records (tags included);
the CSV export agrees with it; the usage log's totalCount, from rollups, equals the
records it lists; API keys see their own figures; ranges are checked; retention prunes
raw usage while summaries, counts and verify stay whole."""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.ids import to_global_id
from app.ledger.state import usage_t
from app.settings import Settings
from app.usage.rollups import daily_by_t, daily_t, hourly_by_t, hourly_t
from tests.conftest import JWT_SECRET, Harness, running_app, usage_event

T0 = datetime(2026, 3, 30, 22, 0, tzinfo=UTC)

SUMMARY = """
query UsageSummary($since: DateTime!, $until: DateTime!, $granularity: Granularity = DAY) {
  viewer { organization { usageSummary(since: $since, until: $until, granularity: $granularity) {
    total { credits usd }
    requests
    series { bucketStart spend { credits } requests }
    byModel { model spend { credits } requests }
    byAction { action spend { credits } requests }
    byApiKey { apiKey { id name } spend { credits } requests }
    byAgent { value spend { credits } requests }
    byConversation { value spend { credits } requests }
    projectedPeriodSpend { credits }
  } } }
}
"""

# Model, action and extra fields of an event: two token-priced models and a passthrough one.
KINDS = [
    ("claude-sonnet-4-6", "llm_inference", {}),
    ("gpt-5-5", "llm_inference", {}),
    ("openai/gpt-image-1", "image", {"provider_cost_usd": "0.04"}),
]


def app_settings(directory: Path, database_url: str | None = None, **extra: Any) -> Settings:
    """Settings on ``database_url`` (conftest's, on each engine), else an SQLite file in
    ``directory`` (the property test's examples each need a database of their own)."""
    return Settings(
        database_url=database_url or f"sqlite+aiosqlite:///{directory / 'creditgraph.db'}",
        state_dir=directory / "state",
        jwt_secret=JWT_SECRET,
        run_jobs=False,
        **extra,
    )


def summary_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"]["usageSummary"]  # type: ignore[no-any-return]


async def raw_records(harness: Harness) -> list[Any]:
    async with harness.runtime.db.reader.connect() as conn:
        return list((await conn.execute(select(usage_t))).all())


def expected(records: list[Any], key_ids: dict[int, str]) -> dict[str, Any]:
    """The summary's figures, summed over the raw records."""
    by: dict[str, dict[Any, list[int]]] = {
        name: defaultdict(lambda: [0, 0])
        for name in ("model", "action", "key", "agent", "conversation")
    }
    for r in records:
        for name, value in (
            ("model", r.model),
            ("action", r.action),
            ("key", r.api_key_id),
            ("agent", r.tags.get("agent")),
            ("conversation", r.tags.get("conversation")),
        ):
            if value is not None:
                by[name][value][0] += r.cost
                by[name][value][1] += 1
    return {
        "total": sum(r.cost for r in records),
        "requests": len(records),
        "model": {m: tuple(v) for m, v in by["model"].items()},
        "action": {a: tuple(v) for a, v in by["action"].items()},
        "key": {key_ids[k]: tuple(v) for k, v in by["key"].items()},
        "agent": {a: tuple(v) for a, v in by["agent"].items()},
        "conversation": {c: tuple(v) for c, v in by["conversation"].items()},
    }


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    def pairs(items: list[dict[str, Any]], name: str) -> dict[str, tuple[int, int]]:
        return {
            (i[name]["id"] if name == "apiKey" else i[name]): (
                int(i["spend"]["credits"]),
                i["requests"],
            )
            for i in items
        }

    return {
        "total": int(summary["total"]["credits"]),
        "requests": summary["requests"],
        "model": pairs(summary["byModel"], "model"),
        "action": pairs(summary["byAction"], "action"),
        "key": pairs(summary["byApiKey"], "apiKey"),
        "agent": pairs(summary["byAgent"], "value"),
        "conversation": pairs(summary["byConversation"], "value"),
    }


def ranked(items: list[dict[str, Any]]) -> bool:
    """Whether a breakdown is by spend, then requests, descending."""
    order = [(int(i["spend"]["credits"]), i["requests"]) for i in items]
    return order == sorted(order, reverse=True)


events = st.lists(
    st.tuples(
        st.integers(0, 2),  # key
        st.integers(0, len(KINDS) - 1),  # model
        st.integers(0, 3000),  # prompt tokens
        st.booleans(),  # failed
        st.integers(0, 40),  # hours to advance the clock before it
        st.sampled_from([None, "support-bot", "coder"]),  # agent tag
        st.sampled_from([None, "c1", "c2", "c3"]),  # conversation tag
    ),
    min_size=1,
    max_size=25,
)


Event = tuple[int, int, int, bool, int, str | None, str | None]


async def _property(directory: Path, batch: list[Event]) -> None:
    clock = FrozenClock(T0)
    async with running_app(app_settings(directory), clock) as harness:
        org = await harness.org("acme", grant_usd="5")
        keys = [await harness.key(org) for _ in range(3)]
        for n, (key, kind, tokens, failed, hours, agent, conversation) in enumerate(batch):
            clock.advance(timedelta(hours=hours, minutes=7))
            model, _, extra = KINDS[kind]
            tags = {"agent": agent, "conversation": conversation, "team": "ml"}
            event = usage_event(
                keys[key].id,
                f"r{n}",
                model=model,
                prompt_tokens=tokens,
                tags={k: v for k, v in tags.items() if v is not None},
                **extra,
            ) | ({"status": "failed"} if failed else {})
            await harness.usage(org, event)
        records = await raw_records(harness)
        assert len(records) == len(batch)
        key_ids = {k.id: to_global_id("ApiKey", k.id) for k in keys}
        want = expected(records, key_ids)
        headers = harness.token(org, Role.VIEWER)
        since, until = T0, clock.now() + timedelta(hours=1)
        for granularity in ("DAY", "HOUR"):
            got = summary_of(
                await harness.graphql(
                    SUMMARY,
                    headers=headers,
                    since=since.isoformat(),
                    until=until.isoformat(),
                    granularity=granularity,
                )
            )
            assert figures(got) == want
            for name in ("byModel", "byAction", "byApiKey", "byAgent", "byConversation"):
                assert ranked(got[name]), got[name]
            assert sum(int(b["spend"]["credits"]) for b in got["series"]) == want["total"]
            assert sum(b["requests"] for b in got["series"]) == want["requests"]
            step = timedelta(hours=1) if granularity == "HOUR" else timedelta(days=1)
            per_bucket: dict[str, int] = defaultdict(int)
            for r in records:
                at = r.created_at.replace(minute=0, second=0, microsecond=0)
                if granularity == "DAY":
                    at = at.replace(hour=0)
                per_bucket[at.isoformat()] += r.cost
            starts = [datetime.fromisoformat(b["bucketStart"]) for b in got["series"]]
            assert all(b - a == step for a, b in pairwise(starts))
            assert {
                datetime.fromisoformat(b["bucketStart"]).isoformat(): int(b["spend"]["credits"])
                for b in got["series"]
                if int(b["spend"]["credits"])
            } == {k: v for k, v in per_bucket.items() if v}
        # Each key sees exactly its own share.
        for key in keys:
            mine = [r for r in records if r.api_key_id == key.id]
            body = await harness.graphql(
                SUMMARY,
                headers={"Authorization": f"Bearer {key.secret}"},
                since=since.isoformat(),
                until=until.isoformat(),
            )
            assert figures(summary_of(body)) == expected(mine, key_ids)
        assert await harness.books() == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_summary_equals_sums_over_raw_records(batch: list[Event]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_property(Path(directory), batch))


async def test_a_batch_writes_one_rollup_row_per_key_model_and_action(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    await harness.usage(org, *(usage_event(key.id, f"r{i}") for i in range(50)))
    async with harness.runtime.db.reader.connect() as conn:
        hourly = (await conn.execute(select(hourly_t))).all()
        daily = (await conn.execute(select(daily_t))).all()
    assert [(r.spend, r.requests) for r in hourly] == [(50 * 6000, 50)]
    assert [(r.spend, r.requests) for r in daily] == [(50 * 6000, 50)]


@pytest.mark.parametrize(
    ("rollup", "where"),
    [
        (hourly_t, hourly_t.c.model == "claude-sonnet-4-6"),
        (daily_t, daily_t.c.model == "claude-sonnet-4-6"),
        (hourly_by_t, hourly_by_t.c.dimension == "model"),
        (hourly_by_t, hourly_by_t.c.dimension == "agent"),
        (daily_by_t, daily_by_t.c.dimension == "conversation"),
    ],
    ids=["hourly", "daily", "hourly-by-model", "hourly-by-agent", "daily-by-conversation"],
)
async def test_verify_finds_a_rollup_that_drifted(
    harness: Harness, rollup: Any, where: Any
) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    tags = {"agent": "planner", "conversation": "c-1"}
    await harness.usage(org, *(usage_event(key.id, f"r{i}", tags=tags) for i in range(3)))
    assert await harness.books() == []
    async with harness.runtime.db.write(None) as conn:
        changed = await conn.execute(update(rollup).where(where).values(spend=rollup.c.spend + 1))
    assert changed.rowcount >= 1
    problems = await harness.books()
    assert problems
    assert all("usage" in p for p in problems), problems


async def test_csv_export_totals_equal_the_summary(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    first, second = await harness.key(org), await harness.key(org)
    await harness.usage(
        org,
        *(usage_event(first.id, f"a{i}", prompt_tokens=100 * i) for i in range(30)),
        usage_event(second.id, "b1", model="gpt-5-5"),
        usage_event(second.id, "b2", status="failed"),
    )
    now = harness.runtime.clock.now()
    since, until = now - timedelta(days=1), now + timedelta(days=1)
    summary = summary_of(
        await harness.graphql(
            SUMMARY,
            headers=harness.token(org, Role.VIEWER),
            since=since.isoformat(),
            until=until.isoformat(),
        )
    )
    response = await harness.http.get(
        "/api/v1/me/usage.csv",
        params={"since": since.isoformat(), "until": until.isoformat()},
        headers=harness.token(org, Role.VIEWER),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "request_id",
        "api_key_id",
        "model",
        "action",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "units",
        "credits",
        "usd",
        "created_at",
    ]
    assert len(rows) == summary["requests"] == 32
    assert sum(int(r["credits"]) for r in rows) == int(summary["total"]["credits"])
    # An API key exports only its own calls; filters apply.
    mine = await harness.http.get(
        "/api/v1/me/usage.csv", headers={"Authorization": f"Bearer {second.secret}"}
    )
    assert {r["request_id"] for r in csv.DictReader(io.StringIO(mine.text))} == {"b1", "b2"}
    by_model = await harness.http.get(
        "/api/v1/me/usage.csv", params={"model": "gpt-5-5"}, headers=harness.token(org)
    )
    assert [r["request_id"] for r in csv.DictReader(io.StringIO(by_model.text))] == ["b1"]


async def test_csv_export_streams_past_one_page(harness: Harness, monkeypatch: Any) -> None:
    from app.api.rest import exports

    monkeypatch.setattr(exports, "PAGE", 7)
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    await harness.usage(org, *(usage_event(key.id, f"r{i}") for i in range(30)))
    response = await harness.http.get("/api/v1/me/usage.csv", headers=harness.token(org))
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(r["request_id"] for r in rows) == sorted(f"r{i}" for i in range(30))


async def test_range_is_checked(harness: Harness) -> None:
    org = await harness.org("acme")
    headers = harness.token(org, Role.VIEWER)
    for since, until, granularity in (
        ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "DAY"),
        ("2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z", "HOUR"),
        ("2025-01-01T00:00:00Z", "2026-02-06T00:00:00Z", "DAY"),
    ):
        body = await harness.graphql(
            SUMMARY, headers=headers, since=since, until=until, granularity=granularity
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    body = await harness.graphql(
        SUMMARY,
        headers=headers,
        since="2026-01-01T10:30:00Z",
        until="2026-01-01T12:10:00Z",
        granularity="HOUR",
    )
    series = summary_of(body)["series"]
    assert [datetime.fromisoformat(b["bucketStart"]).hour for b in series] == [10, 11, 12]


async def test_projection_extrapolates_the_month(tmp_path: Path, database_url: str) -> None:
    clock = FrozenClock(datetime(2026, 4, 11, 0, 0, tzinfo=UTC))  # a third of April gone
    async with running_app(app_settings(tmp_path, database_url), clock) as harness:
        org = await harness.org("acme", grant_usd="10")
        key = await harness.key(org)
        await harness.usage(org, usage_event(key.id, "r1"))
        body = await harness.graphql(
            SUMMARY,
            headers=harness.token(org, Role.VIEWER),
            since="2026-04-01T00:00:00Z",
            until="2026-04-12T00:00:00Z",
        )
        assert summary_of(body)["projectedPeriodSpend"]["credits"] == str(6000 * 3)


async def test_retention_prunes_raw_usage_and_keeps_summaries(
    tmp_path: Path, database_url: str
) -> None:
    clock = FrozenClock(T0)
    retained = app_settings(tmp_path, database_url, usage_retention_days=2)
    async with running_app(retained, clock) as harness:
        org = await harness.org("acme", grant_usd="10")
        key = await harness.key(org)
        for day in range(5):
            await harness.usage(
                org, *(usage_event(key.id, f"d{day}-{i}", prompt_tokens=day) for i in range(3))
            )
            clock.advance(timedelta(days=1, hours=1))
        headers = harness.token(org, Role.VIEWER)
        variables = {"since": T0.isoformat(), "until": clock.now().isoformat()}
        before = summary_of(await harness.graphql(SUMMARY, headers=headers, **variables))
        monkeypatched = maintenance.CHUNK
        maintenance.CHUNK = 2  # several bounded chunks
        try:
            swept = await maintenance.run_once(harness.runtime)
        finally:
            maintenance.CHUNK = monkeypatched
        assert swept.usage_pruned == 9
        async with harness.runtime.db.reader.connect() as conn:
            left = await conn.scalar(select(func.count()).select_from(usage_t))
        assert left == 6
        after = summary_of(await harness.graphql(SUMMARY, headers=headers, **variables))
        assert after == before
        assert before["requests"] == 15
        assert await harness.books() == []
        # More usage after pruning still verifies, and pruning again is a no-op.
        await harness.usage(org, usage_event(key.id, "late"))
        assert (await maintenance.run_once(harness.runtime)).usage_pruned == 0
        assert await harness.books() == []
