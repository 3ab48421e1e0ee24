"""What an organization's plan lets one call do: open-model size, concurrency, messages.

Checked by the writer's authorization (``app.gateway.authorize``) on counts loaded with
the wallet and kept current within the batch (``app.ledger.state.PlanUsage``), so of N
concurrent authorizations exactly as many pass as the plan allows:

- an open model (one with ``params_b``) larger than the plan's entitlement runs is
  refused (403 ``model_not_unlocked``), naming the purchase that unlocks it (Bytez);
- a call beyond the entitlement's concurrency is refused (429 ``concurrency_limit``,
  ``Retry-After: 1``: a call in flight may report its usage at any moment). It counts
  the org's active holds one each (ByteSpike), or where the plan's
  ``concurrency_counts`` says so (Bytez: "Concurrent Requests (7B)") open-model holds
  in 7B slots, a call taking ``ModelPrice.slots``;
- a closed-model call beyond ``closed_requests_per_second``, counted as the closed-model
  holds placed in the last second, is refused (429 ``requests_per_second``) until the
  oldest leaves it (Bytez Free: "10 requests/second (closed models)");
- a call that does not fit the 12-hour message window (ByteSpike: "50-500 messages"),
  which the holds the org placed in the last 12 hours share, each taking its model
  class's ``Plan.message_weight``, is refused (429 ``message_limit``) until the oldest
  of them leaves the window.

The first two carry ``unlock``: the purchase that reaches the lowest unlock tier
running the model with a call free, when there is one; autoScale buys it.

Whether the wallet must cover a call (plans with overage do not) is ``check_spend``'s.
"""

from __future__ import annotations

import math
from datetime import datetime

from app.keys.caps import Refusal
from app.ledger.state import PlanUsage
from app.money import CREDITS_PER_USD
from app.plans.catalog import (
    MESSAGE_WINDOW,
    PURCHASE_WINDOW,
    REQUEST_WINDOW,
    ConcurrencyCounts,
    Entitlement,
    Plan,
)
from app.pricing.book import ModelPrice

IN_FLIGHT_RETRY_SECONDS = 1  # when a call in flight ends is not known


def check_plan(usage: PlanUsage, price: ModelPrice, now: datetime) -> Refusal | None:
    """The first plan limit a call to ``price``'s model would break, or None."""
    plan = usage.plan
    entitlement = plan.entitlement(usage.purchased)
    if price.params_b is not None:  # an open model
        largest = entitlement.max_open_model_params_b
        if largest is not None and price.params_b > largest:
            message = _too_large(plan, usage, price, largest)
            return Refusal(403, "model_not_unlocked", message, unlock=_unlock(usage, price))
    refusal = _concurrency(entitlement, usage, price, now)
    if refusal is not None:
        return refusal
    if price.params_b is None:
        refusal = _per_second(plan, usage, now)
        if refusal is not None:
            return refusal
    return _messages(plan, usage, price, now)


def _concurrency(
    entitlement: Entitlement, usage: PlanUsage, price: ModelPrice, now: datetime
) -> Refusal | None:
    plan, limit, busy = usage.plan, entitlement.concurrency, usage.in_flight
    takes = plan.in_flight(1, price.slots)
    if limit is None or takes == 0 or busy + takes <= limit:
        return None
    retry = int(now.timestamp()) + IN_FLIGHT_RETRY_SECONDS
    if plan.concurrency_counts is ConcurrencyCounts.CALLS:
        message = (
            f"the {plan.name} plan runs {limit} call{'s' if limit != 1 else ''} at once "
            f"and {busy} {'are' if busy != 1 else 'is'} in flight"
        )
        return Refusal(429, "concurrency_limit", message, retry)
    also = "" if takes == 1 else f"; {price.name} takes {takes}"
    message = (
        f"your tier runs {_slots(limit)} of open-model calls at once and "
        f"{_slots(busy)} {'are' if busy != 1 else 'is'} in flight{also}"
    )
    return Refusal(429, "concurrency_limit", message, retry, unlock=_unlock(usage, price))


def _slots(count: int) -> str:
    return f"{count} 7B slot{'s' if count != 1 else ''}"


def _per_second(plan: Plan, usage: PlanUsage, now: datetime) -> Refusal | None:
    limit = plan.closed_requests_per_second
    if limit is None or usage.closed_last_second < limit:
        return None
    oldest = usage.oldest_closed if usage.oldest_closed is not None else now
    return Refusal(
        429,
        "requests_per_second",
        f"the {plan.name} plan allows {limit} closed-model requests per second",
        math.ceil((oldest + REQUEST_WINDOW).timestamp()),
    )


def _messages(plan: Plan, usage: PlanUsage, price: ModelPrice, now: datetime) -> Refusal | None:
    if not plan.messages_per_12h:
        return None
    used = sum(plan.message_weight(c) * recent.count for c, recent in usage.recent.items())
    if used + plan.message_weight(price.model_class) <= plan.message_window:
        return None
    oldest = min((recent.oldest for recent in usage.recent.values()), default=now)
    figure = plan.message_window // plan.message_weight(price.model_class)
    return Refusal(
        429,
        "message_limit",
        f"the {plan.name} plan's 12-hour window is full for {price.model_class} models: "
        f"it holds {figure} such calls, fewer beside calls to other models",
        math.ceil((oldest + MESSAGE_WINDOW).timestamp()),
    )


def _unlock(usage: PlanUsage, price: ModelPrice) -> int | None:
    """The purchase reaching the lowest tier that runs ``price``'s model with its slots
    free; None when no tier does (or the plan has none)."""
    assert price.params_b is not None
    for tier in usage.plan.unlock_tiers:
        if (
            tier.purchased > usage.purchased
            and tier.max_open_model_params_b >= price.params_b
            and tier.concurrency >= usage.in_flight + price.slots
        ):
            return tier.purchased - usage.purchased
    return None


def _too_large(plan: Plan, usage: PlanUsage, price: ModelPrice, largest: int) -> str:
    model = f"{price.name} ({price.params_b}B)"
    runs = f"open models up to {largest}B"
    assert price.params_b is not None
    for tier in plan.unlock_tiers:
        if tier.max_open_model_params_b >= price.params_b and tier.purchased > usage.purchased:
            needed = _usd_up(tier.purchased - usage.purchased)
            return (
                f"{model} needs a purchase of {needed} USD more within "
                f"{PURCHASE_WINDOW.days} days; your tier runs {runs}"
            )
    return f"{model} is larger than the {plan.name} plan runs: {runs}"


def _usd_up(credits: int) -> str:
    """USD with two places, rounded up: a purchase of that much is enough."""
    cents = -(-credits // (CREDITS_PER_USD // 100))
    return f"{cents // 100}.{cents % 100:02d}"
