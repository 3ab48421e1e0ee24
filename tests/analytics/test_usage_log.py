"""The usage log's totalCount (answered from rollups when the filter allows) equals the
records the log lists, for every filter, before and after retention prunes old days;
tag breakdowns keep the highest-spend values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.ids import to_global_id
from tests.analytics.test_summary import SUMMARY, app_settings, raw_records, summary_of
from tests.conftest import running_app, usage_event

T0 = datetime(2026, 5, 3, 20, 30, tzinfo=UTC)

USAGE = """
query Usage($filter: UsageFilter, $first: Int = 100, $after: String) {
  viewer { organization { usage(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { requestId } }
  } } }
}
"""


async def listed(harness: Any, headers: dict[str, str], f: dict[str, Any]) -> tuple[int, set[str]]:
    """totalCount and every request id the log lists, page after page."""
    seen: set[str] = set()
    after, total = None, -1
    while True:
        body = await harness.graphql(USAGE, headers=headers, filter=f, first=7, after=after)
        assert "errors" not in body, body
        usage = body["data"]["viewer"]["organization"]["usage"]
        total = usage["totalCount"]
        seen |= {e["node"]["requestId"] for e in usage["edges"]}
        if not usage["pageInfo"]["hasNextPage"]:
            return total, seen
        after = usage["pageInfo"]["endCursor"]


def matching(records: list[Any], f: dict[str, Any], key_ids: dict[str, int]) -> set[str]:
    def ok(r: Any) -> bool:
        return (
            ("apiKeyId" not in f or r.api_key_id == key_ids[f["apiKeyId"]])
            and f.get("model", r.model) == r.model
            and f.get("action", r.action) == r.action
            and f.get("requestId", r.request_id) == r.request_id
            and ("since" not in f or r.created_at >= datetime.fromisoformat(f["since"]))
            and ("until" not in f or r.created_at < datetime.fromisoformat(f["until"]))
        )

    return {r.request_id for r in records if ok(r)}


async def test_total_count_equals_the_records_listed_before_and_after_pruning(
    tmp_path: Path,
) -> None:
    clock = FrozenClock(T0)
    async with running_app(app_settings(tmp_path, usage_retention_days=2), clock) as harness:
        org = await harness.org("acme", grant_usd="20")
        keys = [await harness.key(org) for _ in range(2)]
        kinds = [
            ("claude-sonnet-4-6", None),
            ("gpt-5-5", None),
            ("claude-sonnet-4-6", "knowledge_base_query"),
        ]
        n = 0
        for day in range(5):
            for hour in range(3):
                events = []
                for i in range(4):
                    model, action = kinds[(day + hour + i) % 3]
                    extra = {"action": action} if action else {}
                    failed = {"status": "failed"} if i == 3 and hour == 1 else {}
                    events.append(
                        usage_event(keys[i % 2].id, f"r{n}", model=model, **extra, **failed)
                    )
                    n += 1
                await harness.usage(org, *events)
                clock.advance(timedelta(hours=5))
            clock.advance(timedelta(hours=9))
        headers = harness.token(org, Role.VIEWER)
        key_ids = {to_global_id("ApiKey", k.id): k.id for k in keys}
        first_key = to_global_id("ApiKey", keys[0].id)
        since = (T0 + timedelta(days=2)).isoformat()
        filters: list[dict[str, Any]] = [
            {},
            {"model": "gpt-5-5"},
            {"action": "knowledge_base_query"},
            {"action": "llm_inference", "model": "claude-sonnet-4-6"},
            {"apiKeyId": first_key},
            {"apiKeyId": first_key, "model": "claude-sonnet-4-6"},
            {"requestId": "r5"},
            {"since": since, "model": "gpt-5-5"},
            {"until": since},
            {"model": "no-such-model"},
        ]

        async def check(expect_records: int) -> None:
            records = await raw_records(harness)
            assert len(records) == expect_records
            for f in filters:
                want = matching(records, f, key_ids)
                total, seen = await listed(harness, headers, f)
                assert (total, seen) == (len(want), want), f
            # A key sees its own calls only, whatever key it names.
            own = {"Authorization": f"Bearer {keys[1].secret}"}
            mine = {r.request_id for r in records if r.api_key_id == keys[1].id}
            assert await listed(harness, own, {}) == (len(mine), mine)
            assert await listed(harness, own, {"apiKeyId": first_key}) == (0, set())

        await check(60)
        swept = await maintenance.run_once(harness.runtime)
        assert swept.usage_pruned > 0
        await check(60 - swept.usage_pruned)


async def test_tag_breakdowns_list_the_highest_spend_first(tmp_path: Path) -> None:
    async with running_app(app_settings(tmp_path), FrozenClock(T0)) as harness:
        org = await harness.org("acme", grant_usd="10")
        key = await harness.key(org)
        await harness.usage(
            org,
            *(
                usage_event(
                    key.id,
                    f"r{i}",
                    prompt_tokens=1000 * (i % 4),
                    tags={"conversation": f"c{i % 4}", "agent": "coder"},
                )
                for i in range(12)
            ),
        )
        variables = {
            "since": T0.isoformat(),
            "until": (T0 + timedelta(hours=1)).isoformat(),
        }
        top = """query($since: DateTime!, $until: DateTime!, $first: Int!) { viewer {
          organization { usageSummary(since: $since, until: $until) {
            byConversation(first: $first) { value requests } byAgent { value requests } } } } }"""
        headers = harness.token(org, Role.VIEWER)
        body = await harness.graphql(top, headers=headers, first=2, **variables)
        summary = summary_of(body)
        assert summary["byConversation"] == [
            {"value": "c3", "requests": 3},
            {"value": "c2", "requests": 3},
        ]
        assert summary["byAgent"] == [{"value": "coder", "requests": 12}]
        for first in (0, 101):
            body = await harness.graphql(top, headers=headers, first=first, **variables)
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        # The whole summary (the contract's fields and the tags) still answers.
        assert (
            summary_of(await harness.graphql(SUMMARY, headers=headers, **variables))["requests"]
            == 12
        )
