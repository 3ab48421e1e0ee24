from __future__ import annotations

from tests.conftest import Harness


async def test_authorize_then_bill(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    response = await harness.authorize(key, "r1", hold_usd="0.01")
    assert response.status_code == 200, response.text
    print(response.json(), dict(response.headers))
    api_key_id = response.json()["api_key_id"]
    results = await harness.usage(
        org,
        {
            "request_id": "r1",
            "api_key_id": api_key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 500,
        },
    )
    print(results)
    account = await harness.http.get(
        "/api/v1/me/account", headers={"Authorization": f"Bearer {key.secret}"}
    )
    print(account.json(), dict(account.headers))
