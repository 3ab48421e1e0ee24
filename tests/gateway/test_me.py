"""The ``/api/v1/me/*`` paths: balances, envelope headers, usage lists and transactions,
each scoped to the caller (its key, its organization), under a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import Caps, CreatedKey
from app.money import parse_usd
from app.operations import adjust
from app.orgs.service import OrgRef
from tests.conftest import Harness

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)
ENVELOPE = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Quota-Remaining-Credits",
)


async def _never_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.url}: {response.status_code}"


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


@pytest.fixture
def harness(harness: Harness) -> Harness:
    harness.http.event_hooks["response"].append(_never_5xx)
    return harness


def _advance(harness: Harness, delta: timedelta) -> None:
    clock = harness.runtime.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(delta)


def bearer(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


def gid(key: CreatedKey) -> str:
    return to_global_id("ApiKey", key.id)


async def _bill(
    harness: Harness, org: OrgRef, key: CreatedKey, request_id: str, model: str, tokens: int
) -> int:
    (result,) = await harness.usage(
        org,
        {"request_id": request_id, "api_key_id": gid(key), "model": model, "prompt_tokens": tokens},
    )
    assert result["outcome"] == "billed", result
    return int(result["cost"]["credits"])


async def _get(
    harness: Harness, path: str, headers: dict[str, str], **params: Any
) -> httpx.Response:
    return await harness.http.get(path, headers=headers, params=params)


async def _usage(harness: Harness, headers: dict[str, str], **params: Any) -> list[str]:
    response = await _get(harness, "/api/v1/me/usage", headers, limit=100, **params)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [row["request_id"] for row in response.json()["data"]]


# --- account --------------------------------------------------------------------------------


async def test_account_for_an_org_owned_key(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    key = await harness.key(org)
    response = await harness.http.get("/api/v1/me/account", headers=bearer(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == "api_key"
    assert body["balance"] == "5.000000"
    assert body["wallet"]["balance"] == {"credits": "5000000", "usd": "5.000000"}
    assert body["wallet"]["available"] == {"credits": "5000000", "usd": "5.000000"}
    assert body["organization"]["slug"] == "acme"
    assert body["organization"]["id"] == to_global_id("Organization", org.id)
    assert body["api_key"]["id"] == gid(key)
    assert body["api_key"]["prefix"] == key.prefix
    assert body["api_key"]["spent"] == {"credits": "0", "usd": "0.000000"}
    assert response.headers["X-RateLimit-Limit"] == "5.00"
    assert response.headers["X-RateLimit-Remaining"] == "5.00"
    # The wallet never refills with time: its reset is now, never 0.
    now = int(harness.runtime.clock.now().timestamp())
    assert response.headers["X-RateLimit-Reset"] == str(now)
    assert response.headers["X-Quota-Remaining-Credits"] == "5.00"
    assert response.headers["X-Org-Quota-Remaining-Credits"] == "5.00"


async def test_account_for_a_user_owned_key_has_no_org_header(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    key = await harness.key(org, owner="someone", caps=Caps(quota=parse_usd("2")))
    response = await harness.http.get("/api/v1/me/account", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert all(name in response.headers for name in ENVELOPE)
    assert "X-Org-Quota-Remaining-Credits" not in response.headers
    assert response.headers["X-Quota-Remaining-Credits"] == "2.00"
    assert response.headers["X-RateLimit-Limit"] == "2.00"
    assert response.json()["api_key"]["quota"] == {"credits": "2000000", "usd": "2.000000"}


async def test_account_for_a_token_has_no_envelope(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    response = await harness.http.get("/api/v1/me/account", headers=harness.token(org, Role.OWNER))
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
    assert response.json()["api_key"] is None
    assert not any(name in response.headers for name in ENVELOPE)
    anonymous = await harness.http.get("/api/v1/me/account")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"


async def test_5h_limit_remaining_is_limit_minus_spend(harness: Harness) -> None:
    org = await harness.org(grant_usd="100")
    key = await harness.key(org, caps=Caps(limit_5h=parse_usd("1")))
    # 1000 prompt + 500 completion tokens of claude-sonnet-4-6 = $0.003 + $0.0075.
    (result,) = await harness.usage(
        org,
        {
            "request_id": "r1",
            "api_key_id": gid(key),
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 500,
        },
    )
    assert result["cost"] == {"credits": "10500", "usd": "0.010500"}
    _advance(harness, timedelta(minutes=10))
    response = await harness.http.get("/api/v1/me/account", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Limit"] == "1.00"
    assert response.headers["X-RateLimit-Remaining"] == "0.98"
    assert response.headers["X-RateLimit-Reset"] == str(int(T0.timestamp()) + 5 * 3600)
    assert response.headers["X-Quota-Remaining-Credits"] == "99.98"
    assert response.headers["X-Org-Quota-Remaining-Credits"] == "99.98"
    assert response.json()["api_key"]["spent"] == {"credits": "10500", "usd": "0.010500"}
    # A hold counts against the window too.
    assert (await harness.authorize(key, "r2", hold_usd="0.2")).status_code == 200
    held = await harness.http.get("/api/v1/me/account", headers=bearer(key))
    assert held.headers["X-RateLimit-Remaining"] == "0.78"
    # Once the spend leaves the window, the whole limit minus the hold is back.
    _advance(harness, timedelta(hours=5))
    later = await harness.http.get("/api/v1/me/account", headers=bearer(key))
    assert later.headers["X-RateLimit-Remaining"] == "0.80"


async def test_revoked_or_expired_key_cannot_read(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    revoked = await harness.key(org)
    expiring = await harness.key(org, expires_in_days=1)
    for key in (revoked, expiring):
        ok = await harness.http.get("/api/v1/me/account", headers=bearer(key))
        assert ok.status_code == 200
    await harness.revoke(org, revoked)
    _advance(harness, timedelta(days=2))
    for key, code in ((revoked, "api_key_revoked"), (expiring, "api_key_expired")):
        for path in ("/api/v1/me/account", "/api/v1/me/usage", "/api/v1/me/billing/transactions"):
            response = await harness.http.get(path, headers=bearer(key))
            assert response.status_code == 401, response.text
            assert response.json()["code"] == code


# --- usage lists --------------------------------------------------------------------------


async def _seed(harness: Harness) -> tuple[OrgRef, CreatedKey, CreatedKey]:
    """Seven usage rows over four instants, two keys; r5 and r6 share r4's instant."""
    org = await harness.org(grant_usd="100")
    first, second = await harness.key(org), await harness.key(org)
    plan = [
        ("r1", "claude-sonnet-4-6", first),
        ("r2", "gpt-5-mini", second),
        ("r3", "claude-sonnet-4-6", first),
        ("r4", "gpt-5-mini", first),
        ("r5", "claude-sonnet-4-6", second),
        ("r6", "claude-sonnet-4-6", first),
        ("r7", "gpt-5-mini", first),
    ]
    minutes = [0, 1, 2, 3, 3, 3, 4]
    for (request_id, model, key), minute in zip(plan, minutes, strict=True):
        harness.runtime.clock.at = T0 + timedelta(minutes=minute)  # type: ignore[attr-defined]
        await _bill(harness, org, key, request_id, model, 1000)
    return org, first, second


async def test_usage_filters(harness: Harness) -> None:
    org, _, _ = await _seed(harness)
    owner = harness.token(org, Role.OWNER)
    assert await _usage(harness, owner) == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]
    assert await _usage(harness, owner, request_id="r3") == ["r3"]
    assert await _usage(harness, owner, request_id="nope") == []
    assert await _usage(harness, owner, model="gpt-5-mini") == ["r7", "r4", "r2"]
    assert await _usage(harness, owner, model="gpt-5-mini", request_id="r3") == []
    minute = lambda n: (T0 + timedelta(minutes=n)).isoformat()  # noqa: E731
    assert await _usage(harness, owner, since=minute(1), until=minute(3)) == ["r3", "r2"]
    assert await _usage(harness, owner, since=minute(3)) == ["r7", "r6", "r5", "r4"]
    assert await _usage(harness, owner, until=minute(1)) == ["r1"]
    # The same instant in another zone means the same thing.
    plus_two = (T0 + timedelta(minutes=3)).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+02:00").tzinfo
    )
    assert await _usage(harness, owner, since=plus_two.isoformat()) == ["r7", "r6", "r5", "r4"]

    row = (await _get(harness, "/api/v1/me/usage", owner, request_id="r3")).json()["data"][0]
    assert row["model"] == "claude-sonnet-4-6"
    assert row["prompt_tokens"] == 1000
    assert row["cost"] == {"credits": "3000", "usd": "0.003000"}
    assert row["credits"] == "3000"
    assert datetime.fromisoformat(row["created_at"]) == T0 + timedelta(minutes=2)

    for name, value in (("since", "2026-11-02T12:00:00"), ("until", "yesterday")):
        response = await _get(harness, "/api/v1/me/usage", owner, **{name: value})
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_input"
        assert name in response.json()["message"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_usage_pagination_walks_every_row_once(harness: Harness, limit: int) -> None:
    org, _, _ = await _seed(harness)
    owner = harness.token(org, Role.OWNER)
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await _get(harness, "/api/v1/me/usage", owner, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        seen += [row["request_id"] for row in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20
    assert seen == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]
    assert pages == -(-7 // limit)


async def test_pagination_with_filters(harness: Harness) -> None:
    org, _, _ = await _seed(harness)
    owner = harness.token(org, Role.OWNER)
    first = (await _get(harness, "/api/v1/me/usage", owner, limit=2, model="gpt-5-mini")).json()
    assert [row["request_id"] for row in first["data"]] == ["r7", "r4"]
    rest = await _get(
        harness,
        "/api/v1/me/usage",
        owner,
        limit=2,
        model="gpt-5-mini",
        cursor=first["next_cursor"],
    )
    assert [row["request_id"] for row in rest.json()["data"]] == ["r2"]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage!!"},
        {"cursor": "abc"},
        {"cursor": "bm9uc2Vuc2U="},  # "nonsense"
        {"cursor": "MjAyNi0xMS0wMlQxMjowMDowMCswMDowMHx4"},  # "<time>|x"
        {"cursor": ""},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": ""},
        {"limit": "1.5"},
    ],
)
async def test_bad_list_parameters_are_400(harness: Harness, params: dict[str, str]) -> None:
    org, _, _ = await _seed(harness)
    owner = harness.token(org, Role.OWNER)
    (name,) = params
    for path in ("/api/v1/me/usage", "/api/v1/me/billing/transactions"):
        response = await _get(harness, path, owner, **params)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_input"
        assert name in response.json()["message"]


async def test_limit_bounds_are_inclusive(harness: Harness) -> None:
    org, _, _ = await _seed(harness)
    owner = harness.token(org, Role.OWNER)
    for limit in (1, 100):
        response = await _get(harness, "/api/v1/me/usage", owner, limit=limit)
        assert response.status_code == 200
        assert len(response.json()["data"]) == min(limit, 7)


async def test_a_key_sees_only_its_own_usage(harness: Harness) -> None:
    org, first, second = await _seed(harness)
    assert await _usage(harness, bearer(first)) == ["r7", "r6", "r4", "r3", "r1"]
    assert await _usage(harness, bearer(second)) == ["r5", "r2"]
    assert await _usage(harness, bearer(second), request_id="r7") == []
    response = await _get(harness, "/api/v1/me/usage", bearer(second), limit=1)
    assert {row["api_key_id"] for row in response.json()["data"]} == {gid(second)}
    # The owner sees every key's rows.
    owner_rows = await _usage(harness, harness.token(org, Role.OWNER))
    assert sorted(owner_rows) == [f"r{n}" for n in range(1, 8)]
    viewer_rows = await _usage(harness, harness.token(org, Role.VIEWER))
    assert viewer_rows == owner_rows


async def test_transactions_list_grants_and_adjustments_not_usage(harness: Harness) -> None:
    org, first, _ = await _seed(harness)  # 100 USD granted, 7 usage rows billed
    _advance(harness, timedelta(minutes=10))
    await adjust(harness.runtime, org.id, -parse_usd("2.5"), "refund reversal", actor="test")
    for headers in (harness.token(org, Role.OWNER), bearer(first)):
        response = await _get(harness, "/api/v1/me/billing/transactions", headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [(row["kind"], row["memo"], row["amount"]["credits"]) for row in data] == [
            ("adjustment", "refund reversal", "-2500000"),
            ("adjustment", "opening grant", "100000000"),
        ]
        assert data[1]["credits"] == {"credits": "100000000", "usd": "100.000000"}
        # The 7 usage rows billed between them are not listed.
        assert all(row["status"] == "succeeded" for row in data)
        assert response.json()["next_cursor"] is None
    page = await _get(harness, "/api/v1/me/billing/transactions", bearer(first), limit=1)
    assert [row["memo"] for row in page.json()["data"]] == ["refund reversal"]
    rest = await _get(
        harness,
        "/api/v1/me/billing/transactions",
        bearer(first),
        limit=1,
        cursor=page.json()["next_cursor"],
    )
    assert [row["memo"] for row in rest.json()["data"]] == ["opening grant"]
    assert rest.json()["next_cursor"] is None


async def test_another_org_sees_none_of_this_org(harness: Harness) -> None:
    org, first, _ = await _seed(harness)
    other = await harness.org("other", grant_usd="1")
    other_key = await harness.key(other)
    mine = await _get(harness, "/api/v1/me/usage", harness.token(org, Role.OWNER), limit=2)
    cursor = mine.json()["next_cursor"]
    for headers in (harness.token(other, Role.OWNER), bearer(other_key)):
        account = await harness.http.get("/api/v1/me/account", headers=headers)
        assert account.json()["organization"]["slug"] == "other"
        assert account.json()["balance"] == "1.000000"
        assert await _usage(harness, headers) == []
        assert await _usage(harness, headers, request_id="r1") == []
        leaked = await _get(harness, "/api/v1/me/usage", headers, cursor=cursor)
        assert leaked.json()["data"] == []
        transactions = await _get(harness, "/api/v1/me/billing/transactions", headers)
        assert [row["amount"]["credits"] for row in transactions.json()["data"]] == ["1000000"]
    # And this org's views are unchanged by the other org.
    account = await harness.http.get("/api/v1/me/account", headers=bearer(first))
    assert account.json()["organization"]["slug"] == "acme"
