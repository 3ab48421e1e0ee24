"""Bad input at the gateway: every malformed or unauthorized request is a clean 4xx
that changes nothing (no hold, no usage record, no balance movement), never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.settings import Settings
from tests.conftest import Harness, running_app

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)
SONNET = "claude-sonnet-4-6"


@pytest.fixture
async def small(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    async with running_app(settings.model_copy(update={"max_body_bytes": 256}), clock) as harness:
        yield harness


@pytest.fixture
async def frozen(settings: Settings) -> AsyncIterator[Harness]:
    async with running_app(settings, FrozenClock(T0)) as harness:
        yield harness


def _error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "error", "message", "code"}
    assert body["status"] == status
    assert body["code"] == code
    assert fragment in body["message"]


async def _rows(harness: Harness, table: str) -> int:
    async with harness.runtime.db.reader.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def _account_balance(harness: Harness, org: Any) -> str:
    from app.auth import Role

    response = await harness.http.get("/api/v1/me/account", headers=harness.token(org, Role.OWNER))
    assert response.status_code == 200, response.text
    return str(response.json()["wallet"]["balance"]["credits"])


async def _untouched(harness: Harness, org: Any, balance: str) -> None:
    assert await _account_balance(harness, org) == balance
    assert await _rows(harness, "holds") == 0
    assert await _rows(harness, "usage_records") == 0
    assert await harness.books() == []


# --- request bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"api_key": "sk-x"', b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000],
    ids=["garbage", "empty", "truncated", "not-utf8", "too-deep"],
)
async def test_malformed_json_is_400(harness: Harness, content: bytes) -> None:
    org = await harness.org(grant_usd="1")
    response = await harness.http.post(
        "/api/v1/authorize", content=content, headers={"content-type": "application/json"}
    )
    _error(response, 400, "malformed_json", "not valid JSON")
    usage = await harness.http.post("/api/v1/usage", content=content, headers=harness.token(org))
    _error(usage, 400, "malformed_json", "not valid JSON")
    await _untouched(harness, org, "1000000")


@pytest.mark.parametrize("body", [[], [{"api_key": "sk-x"}], "text", 3, None])
async def test_json_that_is_not_an_object_is_400(harness: Harness, body: Any) -> None:
    org = await harness.org(grant_usd="1")
    content = json.dumps(body)  # json=None would send no body at all
    response = await harness.http.post("/api/v1/authorize", content=content)
    _error(response, 400, "malformed_json", "must be a JSON object")
    usage = await harness.http.post("/api/v1/usage", content=content, headers=harness.token(org))
    _error(usage, 400, "malformed_json", "must be a JSON object")


async def test_oversized_body_is_413(small: Harness) -> None:
    org = await small.org(grant_usd="1")
    key = await small.key(org)
    padding = "x" * 300
    declared = await small.authorize(key, "r1", hold_usd="0.01", padding=padding)
    _error(declared, 413, "request_entity_too_large", "larger than 256 bytes")

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit must hold while streaming too.
        yield b'{"api_key": "' + key.secret.encode() + b'", "padding": "'
        for _ in range(10):
            yield b"x" * 50
        yield b'", "model": "claude-sonnet-4-6", "request_id": "r2"}'

    streamed = await small.http.post("/api/v1/authorize", content=chunks())
    _error(streamed, 413, "request_entity_too_large", "larger than 256 bytes")

    events = [{"request_id": f"r{n}", "model": SONNET, "prompt_tokens": 1} for n in range(10)]
    usage = await small.http.post(
        "/api/v1/usage", json={"events": events}, headers=small.token(org)
    )
    _error(usage, 413, "request_entity_too_large")
    await _untouched(small, org, "1000000")
    # A body under the limit still works on the same app.
    assert (await small.authorize(key, "r3", hold_usd="0.01")).status_code == 200


# --- API keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", ["sk-00000000-nope", "not-a-key", "sk-" + "a" * 190, ""], ids=str.__len__
)
async def test_unknown_api_key_is_401(harness: Harness, secret: str) -> None:
    org = await harness.org(grant_usd="1")
    await harness.key(org)
    response = await harness.http.post(
        "/api/v1/authorize",
        json={"api_key": secret, "model": SONNET, "request_id": "r", "hold_usd": "0.01"},
    )
    if secret:
        _error(response, 401, "invalid_api_key", "not valid")
    else:
        _error(response, 400, "invalid_input", "api_key")
    await _untouched(harness, org, "1000000")


async def test_revoked_key_is_403(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    # Warm any cache the key directory keeps before revoking.
    assert (await harness.authorize(key, "before", hold_usd="0.01")).status_code == 200
    await harness.revoke(org, key)
    response = await harness.authorize(key, "after", hold_usd="0.01")
    _error(response, 403, "api_key_revoked", "revoked")
    assert await harness.balance(org) == (1_000_000, 10_000)  # only the first hold
    assert await _rows(harness, "holds") == 1


async def test_expired_key_is_403(frozen: Harness) -> None:
    org = await frozen.org(grant_usd="1")
    key = await frozen.key(org, expires_in_days=1)
    assert (await frozen.authorize(key, "fresh", hold_usd="0.01")).status_code == 200
    clock = frozen.runtime.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(days=2))
    response = await frozen.authorize(key, "stale", hold_usd="0.01")
    _error(response, 403, "api_key_expired", "expired")
    assert await _rows(frozen, "holds") == 1


# --- models ---------------------------------------------------------------------------------


async def test_unknown_model_is_400_and_holds_nothing(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    response = await harness.authorize(key, "r", model="no-such-model", hold_usd="0.01")
    _error(response, 400, "unknown_model", "no-such-model")
    await _untouched(harness, org, "1000000")
    assert await harness.balance(org) == (1_000_000, 0)


async def test_group_that_does_not_serve_the_model_is_403(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org, group="claude-default")
    response = await harness.authorize(key, "r", model="gpt-5-5", hold_usd="0.01")
    _error(response, 403, "model_not_allowed", "gpt-5-5")
    await _untouched(harness, org, "1000000")
    # The same key may call an Anthropic model.
    assert (await harness.authorize(key, "r2", hold_usd="0.01")).status_code == 200


# --- hold amounts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hold_usd",
    ["0.0000001", "-1", "-0.01", 0.5, "abc", "1e2", "NaN", "", True, [], {"usd": "1"}],
)
async def test_bad_hold_is_400(harness: Harness, hold_usd: Any) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    response = await harness.authorize(key, "r", hold_usd=hold_usd)
    _error(response, 400, "invalid_input", "hold_usd")
    await _untouched(harness, org, "1000000")


@pytest.mark.parametrize("tokens", ["max_prompt_tokens", "max_completion_tokens"])
async def test_hold_and_max_tokens_together_is_400(harness: Harness, tokens: str) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    response = await harness.authorize(key, "r", hold_usd="0.01", **{tokens: 100})
    _error(response, 400, "invalid_input", "either hold_usd or max tokens")
    await _untouched(harness, org, "1000000")


@pytest.mark.parametrize("value", [-1, 1.5, "100", True, 2**53])
async def test_bad_max_tokens_is_400(harness: Harness, value: Any) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    response = await harness.authorize(key, "r", max_prompt_tokens=value)
    _error(response, 400, "invalid_input", "max_prompt_tokens")
    await _untouched(harness, org, "1000000")


@pytest.mark.parametrize("missing", ["api_key", "model", "request_id"])
async def test_missing_fields_are_400(harness: Harness, missing: str) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    payload = {"api_key": key.secret, "model": SONNET, "request_id": "r", "hold_usd": "0.01"}
    del payload[missing]
    response = await harness.http.post("/api/v1/authorize", json=payload)
    _error(response, 400, "invalid_input", missing)
    await _untouched(harness, org, "1000000")


# --- the usage endpoint -------------------------------------------------------------------


def _event(key_id: str, request_id: str, **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "api_key_id": key_id, "model": SONNET} | fields


async def test_usage_needs_a_service_token(harness: Harness) -> None:
    from app.auth import Role

    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    body = {"events": [_event(to_global_id("ApiKey", key.id), "r", prompt_tokens=1000)]}
    anonymous = await harness.http.post("/api/v1/usage", json=body)
    _error(anonymous, 401, "unauthorized", "Authorization")
    bad_token = await harness.http.post(
        "/api/v1/usage", json=body, headers={"Authorization": "Bearer not.a.jwt"}
    )
    _error(bad_token, 401, "unauthorized", "not valid")
    for role in (Role.OWNER, Role.ADMIN, Role.VIEWER):
        refused = await harness.http.post(
            "/api/v1/usage", json=body, headers=harness.token(org, role)
        )
        _error(refused, 403, "forbidden", str(role))
    as_key = await harness.http.post(
        "/api/v1/usage", json=body, headers={"Authorization": f"Bearer {key.secret}"}
    )
    _error(as_key, 403, "forbidden", "api_key")
    await _untouched(harness, org, "1000000")


async def test_usage_batch_over_the_limit_is_413(harness: Harness) -> None:
    org = await harness.org(grant_usd="100")
    key_id = to_global_id("ApiKey", (await harness.key(org)).id)
    events = [_event(key_id, f"r{n}", prompt_tokens=1) for n in range(1001)]
    response = await harness.http.post(
        "/api/v1/usage", json={"events": events}, headers=harness.token(org)
    )
    _error(response, 413, "batch_too_large", "1000")
    await _untouched(harness, org, "100000000")
    # Exactly the limit is accepted.
    assert len(await harness.usage(org, *events[:1000])) == 1000


@pytest.mark.parametrize("events", [None, {}, "r1", 1, [], {"0": {}}])
async def test_usage_events_must_be_a_non_empty_list(harness: Harness, events: Any) -> None:
    org = await harness.org(grant_usd="1")
    body = {} if events is None else {"events": events}
    response = await harness.http.post("/api/v1/usage", json=body, headers=harness.token(org))
    _error(response, 400, "invalid_input", "events")
    await _untouched(harness, org, "1000000")


async def test_bad_events_are_rejected_one_by_one(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    other = await harness.org("other", grant_usd="10")
    key_id = to_global_id("ApiKey", (await harness.key(org)).id)
    other_key_id = to_global_id("ApiKey", (await harness.key(other)).id)
    events: list[Any] = [
        _event(key_id, "ok-1", prompt_tokens=1000),  # 1000 x $3/M = 3,000 credits
        _event(key_id, "neg", prompt_tokens=-1),
        _event(key_id, "model", model="no-such-model", prompt_tokens=10),
        _event(to_global_id("ApiKey", 999_999), "nokey", prompt_tokens=10),
        _event(other_key_id, "foreign", prompt_tokens=10),
        _event(key_id, "ok-2", completion_tokens=1000),  # 1000 x $15/M = 15,000 credits
        _event(key_id, "units", units="1e3"),
        _event(key_id, "naive", prompt_tokens=10, occurred_at="2026-11-02T12:00:00"),
        _event("bm90LWFuLWlk", "badid", prompt_tokens=10),
        _event(key_id, "status", prompt_tokens=10, status="maybe"),
        "not an object",
        _event(key_id, "ok-3", prompt_tokens=1, completion_tokens=1),  # 3 + 15 = 18 credits
    ]
    results = await harness.usage(org, *events)
    expected = [
        ("ok-1", "billed", None, "3000"),
        ("neg", "rejected", "invalid_input", "0"),
        ("model", "rejected", "unknown_model", "0"),
        ("nokey", "rejected", "unknown_api_key", "0"),
        ("foreign", "rejected", "unknown_api_key", "0"),
        ("ok-2", "billed", None, "15000"),
        ("units", "rejected", "invalid_input", "0"),
        ("naive", "rejected", "invalid_input", "0"),
        ("badid", "rejected", "invalid_input", "0"),
        ("status", "rejected", "invalid_input", "0"),
        ("", "rejected", "invalid_input", "0"),
        ("ok-3", "billed", None, "18"),
    ]
    got = [
        (
            r["request_id"],
            r["outcome"],
            r["error"] and r["error"]["code"],
            r["cost"]["credits"],
        )
        for r in results
    ]
    assert got == expected
    by_id = {r["request_id"]: r for r in results}
    assert "prompt_tokens" in by_id["neg"]["error"]["message"]
    assert "no-such-model" in by_id["model"]["error"]["message"]
    assert "units" in by_id["units"]["error"]["message"]
    assert "time zone" in by_id["naive"]["error"]["message"]
    assert "api_key_id" in by_id["badid"]["error"]["message"]
    assert all(r["error"] is None for r in results if r["outcome"] == "billed")

    assert await _account_balance(harness, org) == str(10_000_000 - 18_018)
    assert await _account_balance(harness, other) == "10000000"
    assert await _rows(harness, "usage_records") == 3
    assert await harness.books() == []
    # A rejected request id left no trace: sent again correctly, it bills.
    (again,) = await harness.usage(org, _event(key_id, "model", prompt_tokens=1000))
    assert (again["outcome"], again["cost"]["credits"]) == ("billed", "3000")
    # And a billed one is a duplicate, charged once.
    (dup,) = await harness.usage(org, _event(key_id, "ok-1", prompt_tokens=5000))
    assert (dup["outcome"], dup["cost"]["credits"]) == ("duplicate", "3000")
    assert await _account_balance(harness, org) == str(10_000_000 - 21_018)


# --- routing ------------------------------------------------------------------------------


async def test_unknown_path_is_json_404(harness: Harness) -> None:
    for path in ("/nope", "/api/v1/nope", "/api/v1/me/accounts"):
        _error(await harness.http.get(path), 404, "not_found")
    wrong_method = await harness.http.get("/api/v1/authorize")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405
