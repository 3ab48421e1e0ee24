"""A malformed money scalar written into the query itself, not sent as a variable, is the
client's mistake: a validation error that says what a Decimal is, never a masked internal
error, and nothing changes."""

from __future__ import annotations

import pytest

from app.auth import Role
from tests.conftest import Harness

SPEND_CAP = (
    "mutation {{ setSpendCap(input: {{monthlyLimitUsd: {value}}}) {{ userErrors {{ code }} }} }}"
)
CAP = "{ viewer { organization { spendCap { monthlyLimit { usd } } } } }"


@pytest.mark.parametrize("value", ['"1e3"', '"12,50"', '" 5"', '"NaN"', "5", "5.5", "true"])
async def test_a_malformed_inline_decimal_is_a_validation_error(
    harness: Harness, value: str
) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    body = await harness.graphql(SPEND_CAP.format(value=value), owner)
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
    assert (await harness.graphql(CAP, owner))["data"]["viewer"]["organization"]["spendCap"] == {
        "monthlyLimit": None
    }
