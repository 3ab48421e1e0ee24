"""What an organization's plan lets one call do: open-model size, concurrency, messages.

Checked by the writer's authorization (``app.gateway.authorize``) on counts loaded with
the wallet and kept current within the batch (``app.ledger.state.PlanUsage``), so of N
concurrent authorizations exactly as many pass as the plan allows:

- an open model (one with ``params_b``) larger than the plan's entitlement runs is
  refused (403 ``model_not_unlocked``), naming the purchase that unlocks it (Bytez);
- a call beyond the entitlement's concurrency, counted as the org's active holds (on
  open models only, where the plan's ``concurrency_counts`` says so: Bytez), is refused
  (429 ``concurrency_limit``, ``Retry-After: 1``: a call in flight may report its usage
  at any moment);
- a call beyond ``messages_per_12h`` for its model's class, counted as the holds of that
  class the org placed in the last 12 hours, is refused (429 ``message_limit``) until
  the oldest of them leaves the window (ByteSpike).

Whether the wallet must cover a call (plans with overage do not) is ``check_spend``'s.
"""

from __future__ import annotations

import math
from datetime import datetime

from app.keys.caps import Refusal
from app.ledger.state import PlanUsage
from app.money import CREDITS_PER_USD
from app.plans.catalog import MESSAGE_WINDOW, PURCHASE_WINDOW, ConcurrencyCounts, Plan
from app.pricing.book import ModelClass, ModelPrice

IN_FLIGHT_RETRY_SECONDS = 1


def check_plan(usage: PlanUsage, price: ModelPrice, now: datetime) -> Refusal | None:
    """The first plan limit a call to ``price``'s model would break, or None."""
    plan = usage.plan
    entitlement = plan.entitlement(usage.purchased)
    params, largest = price.params_b, entitlement.max_open_model_params_b
    if params is not None and largest is not None and params > largest:  # an open model
        return Refusal(403, "model_not_unlocked", _too_large(plan, usage, price, largest))
    limit = entitlement.concurrency
    counted = plan.counts_in_flight(open_model=params is not None)
    if limit is not None and counted and usage.in_flight >= limit:
        return _concurrency(plan, limit, usage.in_flight, now)
    return _messages(plan, usage, price.model_class)


def _concurrency(plan: Plan, limit: int, in_flight: int, now: datetime) -> Refusal:
    whose = "your tier" if plan.unlock_tiers else f"the {plan.name} plan"
    open_only = plan.concurrency_counts is ConcurrencyCounts.OPEN_MODEL_CALLS
    call = "open-model call" if open_only else "call"
    return Refusal(
        429,
        "concurrency_limit",
        f"{whose} runs {limit} {call}{'s' if limit != 1 else ''} at once "
        f"and {in_flight} {'are' if in_flight != 1 else 'is'} in flight",
        int(now.timestamp()) + IN_FLIGHT_RETRY_SECONDS,
    )


def _messages(plan: Plan, usage: PlanUsage, model_class: ModelClass) -> Refusal | None:
    limit = plan.messages_for(model_class)
    recent = usage.recent.get(model_class)
    if limit is None or recent is None or recent.count < limit:
        return None
    return Refusal(
        429,
        "message_limit",
        f"the {plan.name} plan allows {limit} calls to {model_class} models per 12 hours",
        math.ceil((recent.oldest + MESSAGE_WINDOW).timestamp()),
    )


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
