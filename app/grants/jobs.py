"""Writer jobs that give credits: a grant, and a promo code's redemption.

Each checks its rules on the state the writer locked and posts through ``Adjust`` (the
GRANT entry, its billing transaction and audit record, together), or returns a Refusal
having changed nothing. A promo code's row is locked before the wallets (``ledger.state``)
and its counters move within the batch (``Book.redeem``), so of N concurrent redemptions
exactly as many succeed as its limits allow, across instances too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from app.grants.promos import UNIT_NAMES
from app.ledger.book import Book
from app.ledger.jobs import Adjust, Posted, PostEntry
from app.ledger.state import Needs, WalletState
from app.ledger.tables import EntryKind
from app.money import MAX_CREDITS


class Reason(StrEnum):
    """Why credits were not given."""

    INVALID_REASON = "invalid_reason"
    INVALID_EXPIRY = "invalid_expiry"
    TOO_LARGE = "too_large"
    UNKNOWN_CODE = "unknown_code"
    ALREADY_REDEEMED = "already_redeemed"
    CODE_EXPIRED = "code_expired"
    NOT_APPLICABLE = "not_applicable"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    message: str


UNKNOWN_CODE = Refusal(Reason.UNKNOWN_CODE, "no such promo code")


def _too_large(wallet: WalletState, amount: int) -> Refusal | None:
    """A balance must fit its 64-bit column."""
    if wallet.balance + amount > MAX_CREDITS:
        return Refusal(Reason.TOO_LARGE, "the wallet cannot hold that much more")
    return None


@dataclass(slots=True)
class Grant:
    """An admin's grant (``grants.service.grant`` has checked its input)."""

    entry: PostEntry
    actor: str

    def needs(self, needs: Needs) -> None:
        self.entry.needs(needs)

    def apply(self, book: Book) -> Posted | Refusal:
        wallet = book.state.wallets[self.entry.organization_id]
        refusal = _too_large(wallet, self.entry.amount)
        if refusal is not None:
            return refusal
        return Adjust(self.entry, self.actor, "wallet.grant").apply(book)


@dataclass(slots=True)
class RedeemPromo:
    """An organization redeems a promo code (normalized): one GRANT entry whose reference
    is ``promo:<code>:<number>``, its lot expiring as the code says."""

    organization_id: int
    code: str
    actor: str
    unit_of: Callable[[str], str]  # a rate card's unit (``PriceBook.unit``)

    def needs(self, needs: Needs) -> None:
        needs.orgs.add(self.organization_id)
        needs.orgs_with_lots.add(self.organization_id)
        needs.promo_codes.add(self.code)

    def apply(self, book: Book) -> Posted | Refusal:
        promo = book.state.promos.get(self.code)
        if promo is None:
            return UNKNOWN_CODE
        redeemed = promo.by_org.get(self.organization_id, 0)
        if redeemed >= promo.per_organization:
            times = "once" if redeemed == 1 else f"{redeemed} times"
            return Refusal(
                Reason.ALREADY_REDEEMED,
                f"your organization has redeemed {self.code} {times}, as often as it may",
            )
        if promo.expires_at is not None and promo.expires_at <= book.now:
            return Refusal(
                Reason.CODE_EXPIRED, f"{self.code} expired at {promo.expires_at.isoformat()}"
            )
        wallet = book.state.wallets[self.organization_id]
        unit = self.unit_of(wallet.rate_card)
        if unit != promo.unit:
            return Refusal(
                Reason.NOT_APPLICABLE,
                f"{self.code} grants {UNIT_NAMES[promo.unit]}; your organization's wallet "
                f"counts {UNIT_NAMES[unit]}",
            )
        if promo.max_redemptions is not None and promo.redemptions >= promo.max_redemptions:
            return Refusal(Reason.EXHAUSTED, f"{self.code} has been redeemed as often as it may")
        refusal = _too_large(wallet, promo.amount)
        if refusal is not None:
            return refusal
        number = book.redeem(promo, self.organization_id, self.actor)
        days = promo.credits_expire_days
        entry = PostEntry(
            self.organization_id,
            EntryKind.GRANT,
            promo.amount,
            f"promo:{promo.code}:{number}",
            memo=f"promo code {promo.code}",
            expires_at=None if days is None else book.now + timedelta(days=days),
        )
        details = {"code": promo.code, "number": number}
        return Adjust(entry, self.actor, "promo.redeem", details).apply(book)
