"""What an organization's plan lets one call do: open-model size, concurrency, messages.

Checked by the writer's authorization (``app.gateway.authorize``) on counts loaded with
the wallet and kept current within the batch (``app.ledger.state.PlanUsage``), so of N
concurrent authorizations exactly as many pass as the plan allows:

- an open model (one with ``params_b``) larger than the plan's entitlement runs is
  refused (403 ``model_not_unlocked``), naming the purchase that unlocks it (Bytez);
- an open-model call beyond the entitlement's concurrency, counted in 7B slots (a call
  takes ``ModelPrice.slots``) over the org's active open-model holds, is refused (429
  ``concurrency_limit``) until one settles (Bytez: "Concurrent Requests (7B)");
- a closed-model call beyond ``closed_requests_per_second``, counted as the closed-model
  holds placed in the last second, is refused (429 ``requests_per_second``) until the
  oldest leaves it (Bytez Free: "10 requests/second (closed models)");
- a call beyond ``messages_per_12h``, counted as the holds the org placed in the last
  12 hours, is refused (429 ``message_limit``) until the oldest leaves the window
  (ByteSpike).

The first two carry ``unlock``: the purchase that reaches the lowest unlock tier
running the model with a call free, when there is one; autoScale buys it.

Whether the wallet must cover a call (plans with overage do not) is ``check_spend``'s.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from app.keys.caps import Refusal
from app.ledger.state import PlanUsage
from app.money import CREDITS_PER_USD
from app.plans.catalog import (
    MESSAGE_WINDOW,
    PURCHASE_WINDOW,
    REQUEST_WINDOW,
    Entitlement,
    Plan,
)
from app.pricing.book import ModelPrice


def check_plan(usage: PlanUsage, price: ModelPrice, now: datetime) -> Refusal | None:
    """The first plan limit a call to ``price``'s model would break, or None."""
    plan = usage.plan
    if price.params_b is not None:  # an open model
        entitlement = plan.entitlement(usage.purchased)
        largest = entitlement.max_open_model_params_b
        if largest is not None and price.params_b > largest:
            message = _too_large(plan, usage, price, largest)
            return Refusal(403, "model_not_unlocked", message, unlock=_unlock(usage, price))
        refusal = _concurrency(entitlement, usage, price, now)
        if refusal is not None:
            return replace(refusal, unlock=_unlock(usage, price))
    else:
        refusal = _per_second(plan, usage, now)
        if refusal is not None:
            return refusal
    limit = plan.messages_per_12h
    if limit is not None and usage.recent_holds >= limit:
        oldest = usage.oldest_recent if usage.oldest_recent is not None else now
        return Refusal(
            429,
            "message_limit",
            f"the {plan.name} plan allows {limit} calls per 12 hours",
            math.ceil((oldest + MESSAGE_WINDOW).timestamp()),
        )
    return None


def _concurrency(
    entitlement: Entitlement, usage: PlanUsage, price: ModelPrice, now: datetime
) -> Refusal | None:
    limit, busy = entitlement.concurrency, usage.open_model_slots
    if limit is None or busy + price.slots <= limit:
        return None
    takes = "" if price.slots == 1 else f"; {price.name} takes {price.slots}"
    return Refusal(
        429,
        "concurrency_limit",
        f"your tier runs {_slots(limit)} of open-model calls at once and "
        f"{_slots(busy)} {'are' if busy != 1 else 'is'} in flight{takes}",
        # When a call in flight ends is not known: a gateway may retry in a second.
        math.ceil(now.timestamp()) + 1,
    )


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


def _unlock(usage: PlanUsage, price: ModelPrice) -> int | None:
    """The purchase reaching the lowest tier that runs ``price``'s model with its slots
    free; None when no tier does (or the plan has none)."""
    assert price.params_b is not None
    for tier in usage.plan.unlock_tiers:
        if (
            tier.purchased > usage.purchased
            and tier.max_open_model_params_b >= price.params_b
            and tier.concurrency >= usage.open_model_slots + price.slots
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
