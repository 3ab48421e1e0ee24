"""Authorizing a call: may this key spend this much on this model, and reserve it.

``dry_run`` answers the same question without reserving anything (the console's Test
button): the same job on the same state, read instead of locked, and its book (the
hold, the envelope after it) never flushed. ``app.gateway.auto_scale`` runs the job
for the gateway: a call that autoScale may buy past its plan's limits comes back
refused with what would lift it (``Decision.unlock``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from app.db import Database
from app.keys.caps import Envelope, Refusal, check_spend, envelope
from app.ledger.book import Book
from app.ledger.state import KeyState, Needs, WalletState, load_state
from app.ledger.tables import HoldStatus
from app.plans.catalog import Catalog
from app.plans.limits import check_plan
from app.pricing.book import ModelPrice, PriceBook, PricingError, UnknownModel


@dataclass(frozen=True, slots=True)
class HoldEstimate:
    """What to hold: a USD amount, or the price of the largest call the gateway may make."""

    credits: int | None = None
    max_prompt_tokens: int = 0
    max_completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    refusal: Refusal | None
    envelope: Envelope | None
    hold: int = 0
    # With autoScale, a plan's open-model limit refused the call and purchasing this many
    # credits lifts it; every other check passed for ``hold``, nothing was held.
    unlock: int = 0
    priority: bool = False  # the plan's priority queue: the gateway queues by it

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def retry_after(self, now: datetime) -> int | None:
        """Seconds until retrying can succeed, when the refusal knows."""
        if self.refusal is None or self.refusal.reset is None:
            return None
        return max(self.refusal.reset - int(now.timestamp()), 0)


@dataclass(frozen=True, slots=True)
class _Checked:
    refusal: Refusal | None
    # What to hold (refused: only with ``unlock``); None: a replayed authorization, whose
    # hold stands.
    amount: int | None = None
    price: ModelPrice | None = None  # the model's, when allowed: what the hold counts as
    unlock: int = 0  # ``Decision.unlock``


@dataclass(slots=True)
class AuthorizeJob:
    organization_id: int
    api_key_id: int
    secret_hash: str
    model: str
    request_id: str
    estimate: HoldEstimate
    prices: PriceBook
    hold_ttl: timedelta
    plans: Catalog
    auto_scale: bool | None = None  # None: as the organization's default says

    def needs(self, needs: Needs) -> None:
        needs.orgs.add(self.organization_id)
        needs.keys.add(self.api_key_id)
        needs.window_keys.add(self.api_key_id)
        needs.requests.add((self.organization_id, self.request_id))
        needs.plan_limits.add(self.organization_id)
        needs.catalog = self.plans

    def apply(self, book: Book) -> Decision:
        state, now = book.state, book.now
        key = state.keys.get(self.api_key_id)
        if key is None or key.secret_hash != self.secret_hash:
            return Decision(Refusal(401, "invalid_api_key", "the API key is not valid"), None)
        wallet = state.wallets[self.organization_id]
        checked = self._check(book, wallet, key)
        usage = state.plan_usage.get(self.organization_id)
        priority = usage is not None and usage.plan.priority
        if checked.refusal is not None:  # the envelope as the key stands: nothing was held
            return Decision(
                checked.refusal,
                envelope(wallet, key, now),
                checked.amount or 0,
                checked.unlock,
                priority,
            )
        if checked.amount is None:  # a replayed authorization: its hold stands
            hold = state.holds[(self.organization_id, self.request_id)]
            return Decision(None, envelope(wallet, key, now), hold.amount, priority=priority)
        amount, price = checked.amount, checked.price
        assert price is not None
        book.place_hold(
            wallet,
            key,
            self.request_id,
            amount,
            self.hold_ttl,
            slots=price.slots,
            model_class=price.model_class,
        )
        return Decision(None, envelope(wallet, key, now), amount, priority=priority)

    def _check(self, book: Book, wallet: WalletState, key: KeyState) -> _Checked:
        state, now = book.state, book.now
        status = key.status(now)
        if status != "active":
            return _Checked(Refusal(403, f"api_key_{status}", f"the API key is {status}"))
        try:
            price = self.prices.model(wallet.rate_card, self.model, now)
            amount = self._amount(wallet.rate_card, now)
        except UnknownModel as error:
            return _Checked(Refusal(400, "unknown_model", str(error)))
        except PricingError as error:
            return _Checked(Refusal(400, "invalid_hold", str(error)))
        if not self.prices.group_serves(key.group, wallet.rate_card, self.model, now):
            message = f"the API key's group {key.group!r} does not serve {self.model!r}"
            return _Checked(Refusal(403, "model_not_allowed", message))
        request = (self.organization_id, self.request_id)
        if request in state.prior_usage:
            return _Checked(Refusal(409, "already_billed", "this request id is billed"))
        hold = state.holds.get(request)
        if hold is not None:
            if hold.status == HoldStatus.ACTIVE and hold.api_key_id == key.id:
                return _Checked(None)
            return _Checked(Refusal(409, "request_id_used", "this request id is used"))
        # The organization's plan (``app.plans.limits``), when it is on one; only what the
        # plan limits was counted. autoScale goes on past a limit a purchase lifts.
        usage = state.plan_usage.get(self.organization_id)
        limited = None if usage is None else check_plan(usage, price, now)
        scales = wallet.auto_scale if self.auto_scale is None else self.auto_scale
        if limited is not None and not (scales and limited.unlock):
            return _Checked(limited)
        refusal = check_spend(
            wallet,
            key,
            amount,
            now,
            critical=self.prices.is_critical(price.action),
            overage=usage is not None and usage.plan.overage_usd_per_credit is not None,
        )
        worded = self.prices.payment_required_message(wallet.rate_card)
        if refusal is not None and refusal.status == 402 and worded is not None:
            refusal = replace(refusal, message=worded)
        if refusal is not None:
            return _Checked(refusal)
        if limited is not None:  # autoScale: refused until the purchase lifts the limit
            return _Checked(limited, amount, unlock=limited.unlock or 0)
        return _Checked(None, amount, price)

    def _amount(self, card: str, now: datetime) -> int:
        estimate = self.estimate
        if estimate.credits is not None:
            return estimate.credits
        if estimate.max_prompt_tokens or estimate.max_completion_tokens:
            return self.prices.max_cost(
                card,
                self.model,
                estimate.max_prompt_tokens,
                estimate.max_completion_tokens,
                now,
            )
        return 0


async def dry_run(db: Database, job: AuthorizeJob, now: datetime) -> Decision:
    """What the writer would answer to ``job`` now, from one read: nothing is written."""
    needs = Needs()
    job.needs(needs)

    def decide(conn: Connection) -> Decision:
        return job.apply(Book(load_state(conn, needs, now, lock=False)))  # not flushed

    return await db.read(decide)
