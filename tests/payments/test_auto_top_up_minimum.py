"""8bit-ai's auto top-up minimum ("$10 (Starter), $25 (Pro)"): updateAutoReload refuses
a smaller reload while auto-reload is on, and leaves the settings as they were."""

from __future__ import annotations

import pytest

from app.auth import Role
from app.operations import create_organization
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.payments.test_auto_reload import DEFAULTS, read, update
from tests.plans.test_enforcement import subscribe

PLAN = "{ viewer { organization { subscription { plan { autoTopUpMinimum { usd } } } } } }"


async def on_plan(harness: Harness, plan: str) -> OrgRef:
    org = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
    await subscribe(harness, org, plan)
    return org


@pytest.mark.parametrize(("plan", "minimum"), [("8bit-starter", "10"), ("8bit-pro", "25")])
async def test_a_reload_under_the_plan_minimum_is_refused(
    harness: Harness, plan: str, minimum: str
) -> None:
    org = await on_plan(harness, plan)
    below = str(int(minimum) - 5)
    refused = await update(harness, org, enabled=True, amountUsd=below, monthlyMaxUsd="100")
    assert refused["autoReload"] is None
    assert refused["userErrors"] == [{"field": "amountUsd", "code": "INVALID_AMOUNT"}]
    assert (await read(harness, org))[0] == DEFAULTS
    accepted = await update(harness, org, enabled=True, amountUsd=minimum)
    assert accepted["userErrors"] == []
    assert accepted["autoReload"]["amount"] == {"usd": f"{minimum}.000000"}
    shown = await harness.graphql(PLAN, headers=harness.token(org, Role.VIEWER))
    subscription = shown["data"]["viewer"]["organization"]["subscription"]
    assert subscription["plan"]["autoTopUpMinimum"] == {"usd": f"{minimum}.000000"}


async def test_enabling_checks_the_amount_already_saved(harness: Harness) -> None:
    org = await on_plan(harness, "8bit-pro")
    # The default $10 may be saved while off, but not switched on under Pro's $25.
    assert (await update(harness, org, thresholdUsd="5"))["userErrors"] == []
    refused = await update(harness, org, enabled=True)
    assert refused["userErrors"] == [{"field": "amountUsd", "code": "INVALID_AMOUNT"}]


async def test_plans_without_a_minimum_keep_the_ladder_s(harness: Harness) -> None:
    org = await harness.org("spike")
    await subscribe(harness, org, "bytespike-pro")
    assert (await update(harness, org, enabled=True, amountUsd="5"))["userErrors"] == []
