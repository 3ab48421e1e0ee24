"""Writer jobs for payments: a top-up settles or fails, a refund claws credits back.

Each re-reads its top-up under the writer's lock and acts only on the state it finds,
so a webhook delivered twice, both events of one payment, a reconciliation and a
webhook racing it all credit a payment exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.events import TopUpUpdated
from app.ids import to_global_id
from app.ledger.book import Book
from app.ledger.state import Needs, TopUpState
from app.ledger.tables import EntryKind
from app.money import amount_json
from app.payments.ladder import CREDITS_PER_CENT
from app.payments.provider import Card
from app.payments.tables import TransactionKind, TransactionStatus
from app.statements.receipts import card_columns
from app.statements.tables import ReceiptKind
from app.webhooks.tables import EventType

# What a receipt says each purchase was.
_BOUGHT = {
    TransactionKind.TOP_UP: "Credits: top-up",
    TransactionKind.AUTO_RELOAD: "Credits: automatic top-up",
}


def _needs(needs: Needs, organization_id: int, top_up_id: int) -> None:
    needs.orgs.add(organization_id)
    needs.orgs_with_lots.add(organization_id)
    needs.top_ups.add(top_up_id)


def _top_up(book: Book, organization_id: int, top_up_id: int) -> TopUpState | None:
    top_up = book.state.top_ups.get(top_up_id)
    if top_up is None or top_up.organization_id != organization_id:
        return None
    return top_up


def _notify(book: Book, top_up: TopUpState, outcome: str) -> None:
    """``top_up.<outcome>``, or ``auto_reload.<outcome>`` for an automatic purchase (an
    auto-reload's, or autoScale's)."""
    kind = "auto_reload" if top_up.kind == TransactionKind.AUTO_RELOAD else "top_up"
    data = {
        "id": to_global_id("BillingTransaction", top_up.id),
        "status": top_up.status,
        "amountPaid": amount_json(top_up.amount),
        "creditsBought": amount_json(top_up.credits_bought),
        "bonus": amount_json(top_up.bonus),
        "failureReason": top_up.failure_reason,
    }
    book.notify(top_up.organization_id, EventType(f"{kind}.{outcome}"), {"topUp": data})


def _updated(book: Book, top_up: TopUpState) -> None:
    top_up.dirty = True
    book.events.append(
        TopUpUpdated(
            top_up.organization_id,
            top_up.id,
            top_up.status,
            top_up.amount,
            top_up.refunded,
            top_up.failure_reason,
            book.now,
        )
    )


@dataclass(slots=True)
class SettleTopUp:
    """The payment succeeded: the credits it bought and its bonus land as two lots, once.

    A failed top-up can still succeed: a payer whose card was declined may retry the
    same PaymentIntent with another card.
    """

    organization_id: int
    top_up_id: int
    payment_intent_id: str | None
    # Purchased credits expire this long after purchase (the account's policy); None = never.
    expiry: timedelta | None
    actor: str
    # For the receipt: the card charged and the tax within the amount, when known.
    card: Card | None = None
    tax_cents: int | None = None

    def needs(self, needs: Needs) -> None:
        _needs(needs, self.organization_id, self.top_up_id)

    def apply(self, book: Book) -> bool:
        top_up = _top_up(book, self.organization_id, self.top_up_id)
        if top_up is None or top_up.status == TransactionStatus.SUCCEEDED:
            return False
        wallet = book.state.wallets[self.organization_id]
        expires_at = None if self.expiry is None else book.now + self.expiry
        reference = f"top_up:{top_up.id}"
        top_up.paid_lot = book.post(
            wallet, EntryKind.TOP_UP, top_up.credits_bought, reference, expires_at=expires_at
        )
        if top_up.bonus:
            top_up.bonus_lot = book.post(
                wallet, EntryKind.BONUS, top_up.bonus, reference, expires_at=expires_at
            )
        before = top_up.status
        top_up.status, top_up.settled_at = TransactionStatus.SUCCEEDED, book.now
        top_up.failure_reason = None
        top_up.payment_intent_id = top_up.payment_intent_id or self.payment_intent_id
        _updated(book, top_up)
        book.receipt(
            self.organization_id,
            ReceiptKind(top_up.kind),
            transaction_id=top_up.id,
            provider=top_up.provider,
            provider_reference=top_up.payment_intent_id,
            description=_BOUGHT[TransactionKind(top_up.kind)],
            currency="USD",
            amount=top_up.amount,
            tax=None if self.tax_cents is None else self.tax_cents * CREDITS_PER_CENT,
            credits=top_up.credits_bought,
            bonus=top_up.bonus,
            **card_columns(self.card),
        )
        _notify(book, top_up, "succeeded")
        book.audit(
            self.organization_id,
            self.actor,
            "top_up.succeeded",
            reference,
            before={"status": before},
            after={"status": top_up.status, "credits": top_up.credits_bought + top_up.bonus},
        )
        return True


@dataclass(slots=True)
class FailTopUp:
    """The payment failed: nothing is credited, and the reason is kept for the payer."""

    organization_id: int
    top_up_id: int
    reason: str
    actor: str

    def needs(self, needs: Needs) -> None:
        needs.top_ups.add(self.top_up_id)

    def apply(self, book: Book) -> bool:
        top_up = _top_up(book, self.organization_id, self.top_up_id)
        if top_up is None or top_up.status != TransactionStatus.PENDING:
            return False
        top_up.status, top_up.settled_at = TransactionStatus.FAILED, book.now
        top_up.failure_reason = self.reason[:500]
        _updated(book, top_up)
        _notify(book, top_up, "failed")
        book.audit(
            self.organization_id,
            self.actor,
            "top_up.failed",
            f"top_up:{top_up.id}",
            before={"status": TransactionStatus.PENDING},
            after={"status": top_up.status, "reason": top_up.failure_reason},
        )
        return True


@dataclass(frozen=True, slots=True)
class Refunded:
    """A refund's effect on the wallet: credits taken back, and those already spent."""

    refunded: int
    clawed_back: int
    shortfall: int


NOTHING_REFUNDED = Refunded(0, 0, 0)


@dataclass(slots=True)
class ApplyRefund:
    """The provider now reports ``refunded_total`` of the payment refunded.

    Totals, not increments: Stripe's ``charge.refunded`` carries the cumulative amount,
    and the admin's mutation reads it back after refunding, so whichever arrives first
    claws back the difference and the other finds nothing left to do. The share of the
    payment refunded takes that share of the credits it bought (half a pack's price,
    half its plan credits) and of the bonus. Credits are taken from the top-up's own
    lots first, then from the rest of the wallet, but never from credits held for calls
    in flight nor below zero; what was already spent is the refund's shortfall.
    """

    organization_id: int
    top_up_id: int
    refunded_total: int
    actor: str
    memo: str | None = None

    def needs(self, needs: Needs) -> None:
        _needs(needs, self.organization_id, self.top_up_id)

    def apply(self, book: Book) -> Refunded:
        top_up = _top_up(book, self.organization_id, self.top_up_id)
        if top_up is None or top_up.status != TransactionStatus.SUCCEEDED:
            return NOTHING_REFUNDED
        total = min(self.refunded_total, top_up.amount)
        if total <= top_up.refunded:
            return NOTHING_REFUNDED
        refunded = total - top_up.refunded
        owed = _credits_share(top_up, total) - _credits_share(top_up, top_up.refunded)
        wallet = book.state.wallets[self.organization_id]
        assert wallet.lots is not None
        wanted = min(owed, max(0, wallet.available))
        taken = 0
        reference = f"top_up:{top_up.id}"
        own = {top_up.paid_lot_id, top_up.bonus_lot_id} - {None}
        for lot in [lot for lot in wallet.lots if lot.id in own]:
            portion = min(lot.remaining, wanted - taken)
            if portion > 0:
                book.post(wallet, EntryKind.REFUND, -portion, reference, lot=lot)
                taken += portion
        if wanted > taken:
            book.post(wallet, EntryKind.REFUND, taken - wanted, reference)
            taken = wanted
        top_up.refunded = total
        _updated(book, top_up)
        refund = book.record(
            self.organization_id,
            TransactionKind.REFUND,
            refunded,
            actor=self.actor,
            credits=-taken,
            shortfall=owed - taken,
            top_up_id=top_up.id,
            memo=self.memo,
        )
        book.receipt(
            self.organization_id,
            ReceiptKind.REFUND,
            transaction=refund,
            refunded_transaction_id=top_up.id,
            provider=top_up.provider,
            provider_reference=top_up.payment_intent_id,
            description="Refund",
            currency="USD",
            amount=refunded,
            credits=-taken,
        )
        book.notify(
            self.organization_id,
            EventType.REFUND_CREATED,
            {
                "refund": {
                    "topUpId": to_global_id("BillingTransaction", top_up.id),
                    "amount": amount_json(refunded),
                    "refundedTotal": amount_json(total),
                    "clawedBack": amount_json(taken),
                    "shortfall": amount_json(owed - taken),
                    "reason": self.memo,
                }
            },
        )
        book.audit(
            self.organization_id,
            self.actor,
            "top_up.refunded",
            reference,
            before={"refunded": total - refunded},
            after={
                "amount": refunded,
                "refunded": total,
                "clawed_back": taken,
                "shortfall": owed - taken,
                "reason": self.memo,
            },
        )
        return Refunded(refunded, taken, owed - taken)


def _credits_share(top_up: TopUpState, refunded: int) -> int:
    """The part of the credits bought and of the bonus that ``refunded`` of the payment
    carried (each rounded down, so the whole payment carries all of both)."""
    bought = top_up.credits_bought * refunded // top_up.amount
    return bought + top_up.bonus * refunded // top_up.amount
