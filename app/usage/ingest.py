"""Billing reported calls: one usage event becomes a record, a charge and a settled hold.

Each event stands alone: a rejected event changes nothing and does not fail its batch.
A request id is billed once per organization; a replay (in the same batch, a later
one, or a concurrent one) answers ``duplicate`` with the cost first billed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.ledger.book import Book
from app.ledger.state import Needs, PriorUsage
from app.ledger.tables import HoldStatus
from app.pricing.book import Metered, PriceBook, PricingError, UnknownModel
from app.usage.tables import UsageRow, UsageStatus


@dataclass(slots=True)
class UsageEvent:
    """A validated usage event (the shape checks happen at the API edge)."""

    request_id: str
    api_key_id: int
    model: str
    action: str | None
    metered: Metered
    status: UsageStatus
    occurred_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UsageOutcome:
    request_id: str
    outcome: str  # billed | duplicate | not_billed | rejected
    cost: int = 0
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def rejected(cls, request_id: str, code: str, message: str) -> UsageOutcome:
        return cls(request_id, "rejected", 0, code, message)


@dataclass(slots=True)
class UsageJob:
    organization_id: int
    event: UsageEvent
    prices: PriceBook

    def needs(self, needs: Needs) -> None:
        needs.orgs.add(self.organization_id)
        needs.orgs_with_lots.add(self.organization_id)
        needs.keys.add(self.event.api_key_id)
        needs.requests.add((self.organization_id, self.event.request_id))

    def apply(self, book: Book) -> UsageOutcome:
        state, event = book.state, self.event
        request = (self.organization_id, event.request_id)
        prior = state.prior_usage.get(request)
        if prior is not None:
            return UsageOutcome(event.request_id, "duplicate", prior.cost)
        key = state.keys.get(event.api_key_id)
        if key is None or key.organization_id != self.organization_id:
            return UsageOutcome.rejected(event.request_id, "unknown_api_key", "no such API key")
        wallet = state.wallets[self.organization_id]
        occurred_at = event.occurred_at or book.now
        try:
            price = self.prices.model(wallet.rate_card, event.model, occurred_at)
            action = event.action or price.action
            if action not in self.prices.actions:
                raise PricingError(f"unknown action {action!r}")
            succeeded = event.status == UsageStatus.SUCCEEDED
            # Failed calls do not bill.
            cost = price.charge(event.metered) if succeeded else 0
        except UnknownModel as error:
            return UsageOutcome.rejected(event.request_id, "unknown_model", str(error))
        except PricingError as error:
            return UsageOutcome.rejected(event.request_id, "invalid_usage", str(error))
        hold = state.holds.get(request)
        if hold is not None and hold.status == HoldStatus.ACTIVE:
            book.close_hold(hold, HoldStatus.SETTLED if succeeded else HoldStatus.RELEASED)
        row = UsageRow(
            self.organization_id,
            key.id,
            event.request_id,
            event.model,
            action,
            event.status,
            event.metered.prompt_tokens,
            event.metered.completion_tokens,
            event.metered.units,
            event.metered.provider_cost,
            cost,
            event.tags,
            occurred_at,
        )
        book.bill(wallet, key, row)
        state.prior_usage[request] = PriorUsage(event.status, cost)
        return UsageOutcome(event.request_id, "billed" if succeeded else "not_billed", cost)
