"""Money in: the bonus ladder, quotes, top-ups, refunds, auto-reload, billing history."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.engine import Connection as DBConnection

from app.auth import Principal
from app.graphql.context import ADMINS, Info
from app.graphql.enums import TransactionKind, TransactionStatus
from app.graphql.errors import Code, error
from app.graphql.money import Amount
from app.graphql.overview import overview_of
from app.graphql.payloads import (
    Refused,
    UserError,
    UserErrorCode,
    caller,
    refused,
    usd_amounts,
)
from app.graphql.relay import Connection, Node, each, page_connection, require_zones
from app.graphql.scalars import Decimal
from app.ids import parse_global_id, to_global_id
from app.ledger.reads import TRANSACTIONS, TransactionFilter
from app.ledger.state import billing_t
from app.payments.ladder import BonusLadder as Ladder
from app.payments.ladder import Quote, TopUpAmountError, percent
from app.payments.provider import PaymentError
from app.payments.service import (
    AutoReloadError,
    BelowAutoTopUpMinimum,
    NoSuchPack,
    NothingToReload,
    NotRefundable,
    PackRequired,
    PaymentsUnavailable,
    PurchaseError,
    RefundError,
    auto_reload_settings,
)

# -- types ---------------------------------------------------------------------------


@strawberry.type(description="One rung of the bonus ladder.")
class BonusTier:
    min_amount: Amount = strawberry.field(description="The smallest top-up that earns it.")
    bonus_percent: Decimal = strawberry.field(
        description='Extra credits, in percent of the amount paid: "3", "11.2".'
    )


@strawberry.type(
    description="Top-up limits and the bonus each size earns. A top-up earns the bonus of "
    "the highest tier it reaches; below the first tier, none. A plan's top-up bonus boost "
    "adds percentage points on top."
)
class BonusLadder:
    min_top_up: Amount = strawberry.field(description="The smallest top-up (per transaction).")
    max_top_up: Amount = strawberry.field(description="The largest top-up (per transaction).")
    tiers: list[BonusTier] = strawberry.field(description="Ascending by minAmount.")


@strawberry.type(
    description="What a top-up (an amount, or a credit pack on a plan-credit plan) "
    "delivers, before paying."
)
class TopUpQuote:
    amount: Amount = strawberry.field(description="What would be charged, in USD.")
    credits_bought: Amount = strawberry.field(
        description="The wallet's credits the payment buys: the amount itself in a USD "
        "wallet; the pack's plan credits in a plan-credit one (8bit-ai Starter: $20 buys "
        "1,000), where `usd` counts plan credits."
    )
    bonus_percent: Decimal = strawberry.field(
        description="The bonus in percent: the ladder's tier plus the plan's boost (\"8\"); "
        '"0" for credit packs.'
    )
    bonus: Amount = strawberry.field(description="The extra credits the bonus adds.")
    credits_delivered: Amount = strawberry.field(
        description="creditsBought plus bonus: what lands in the wallet once the payment succeeds."
    )

    @classmethod
    def of(cls, quote: Quote) -> TopUpQuote:
        return cls(
            amount=Amount.of(quote.amount),
            credits_bought=Amount.of(quote.credits_bought),
            bonus_percent=Decimal(percent(quote.bonus_basis_points)),
            bonus=Amount.of(quote.bonus),
            credits_delivered=Amount.of(quote.delivered),
        )


@strawberry.type(
    description="A wallet movement that is not an API call: a top-up (by card or "
    "auto-reload), a refund, an adjustment, a grant or an expiry."
)
class BillingTransaction(Node):
    kind: TransactionKind = strawberry.field(description="What kind of movement.")
    status: TransactionStatus = strawberry.field(
        description="PENDING only for top-ups waiting on their payment."
    )
    amount: Amount = strawberry.field(
        description="Top-ups: the USD charged. Refunds: the USD refunded. Adjustments, "
        "grants and expiries: the credits moved (negative when taken)."
    )
    credits_bought: Amount = strawberry.field(
        description="Top-ups: the credits the payment buys before its bonus (the amount in "
        "a USD wallet; a credit pack's, or an auto-reload's converted, plan credits in a "
        "plan-credit one), also while pending; zero for other kinds."
    )
    bonus: Amount = strawberry.field(
        description="Top-ups: the bonus credits the ladder promised; zero for other kinds."
    )
    bonus_percent: Decimal = strawberry.field(
        description='Top-ups: the bonus in percent ("11.2"); "0" for other kinds.'
    )
    credits: Amount = strawberry.field(
        description="What reached the wallet: a succeeded top-up's amount plus bonus (zero "
        "while pending or failed); negative for what a refund or an expiry took."
    )
    refunded: Amount = strawberry.field(
        description="Top-ups: how much of the payment has been refunded so far."
    )
    shortfall: Amount = strawberry.field(
        description="Refunds: credits owed back that were already spent (or held for calls "
        "in flight), so could not be clawed back. Zero otherwise."
    )
    failure_reason: str | None = strawberry.field(
        description="Failed top-ups: why, as the payment provider said (a decline reason)."
    )
    memo: str | None = strawberry.field(
        description='A person\'s reason (adjustments, refunds); "autoScale" on the automatic '
        "purchases autoScale made."
    )
    created_at: datetime = strawberry.field(description="UTC.")
    settled_at: datetime | None = strawberry.field(
        description="When it succeeded or failed (UTC); null while pending."
    )
    _top_up_id: strawberry.Private[int | None]

    @strawberry.field(description="Refunds: the top-up refunded; null for other kinds.")
    def top_up_id(self) -> strawberry.ID | None:
        if self._top_up_id is None:
            return None
        return strawberry.ID(to_global_id("BillingTransaction", self._top_up_id))

    @classmethod
    def of(cls, row: Any) -> BillingTransaction:
        return cls(
            id=strawberry.ID(to_global_id("BillingTransaction", row.id)),
            kind=TransactionKind(row.kind),
            status=TransactionStatus(row.status),
            amount=Amount.of(row.amount),
            credits_bought=Amount.of(row.credits_bought),
            bonus=Amount.of(row.bonus),
            bonus_percent=Decimal(percent(row.bonus_basis_points)),
            credits=Amount.of(row.credits),
            refunded=Amount.of(row.refunded),
            shortfall=Amount.of(row.shortfall),
            failure_reason=row.failure_reason,
            memo=row.memo,
            created_at=row.created_at,
            settled_at=row.settled_at,
            _top_up_id=row.top_up_id,
        )


@strawberry.type(
    description="Automatic top-ups: when a call leaves the balance under the threshold, "
    "the default saved card (Organization.paymentMethods) is charged the amount, one "
    "charge at a time, never past the monthly maximum."
)
class AutoReload:
    enabled: bool = strawberry.field(description="Whether it is on (off by default).")
    threshold: Amount = strawberry.field(
        description="A balance under this starts a reload (default 3), in the wallet's unit "
        "(plan credits on a plan-credit plan)."
    )
    amount: Amount = strawberry.field(
        description="What each reload charges, in USD (default 10); on a plan-credit plan it "
        "buys plan credits at the rate of the plan's credit packs ($10 buys 500 on 8bit-ai "
        "Starter)."
    )
    monthly_max: Amount = strawberry.field(
        description="The most automatic purchases (reloads and autoScale's together: "
        "Bytez's Max Monthly Spend) may charge per calendar month, UTC (default 100 USD)."
    )
    reloaded_this_month: Amount = strawberry.field(
        description="What succeeded automatic purchases (reloads and autoScale's) charged "
        "this calendar month (UTC)."
    )
    card_saved: bool = strawberry.field(
        description="Whether there is a card to charge (the default PaymentMethod, which "
        "autoScale and overage billing charge too); without one nothing reloads. A top-up "
        "paid by card saves one when there is none; setDefaultPaymentMethod chooses among "
        "the saved cards, and removing the default leaves none."
    )
    failure_reason: str | None = strawberry.field(
        description="Why the last reload failed, when it did: reloading is paused until the "
        "settings are saved again, a top-up paid by card saves a card (it becomes the "
        "default) or a card is chosen. Null otherwise."
    )


# -- reads ---------------------------------------------------------------------------


def bonus_ladder(info: Info) -> BonusLadder:
    return ladder_node(info.context.runtime.payments.ladder)


@lru_cache(maxsize=16)
def ladder_node(ladder: Ladder) -> BonusLadder:
    """The bonus ladder as the API shows it: built once (it never changes)."""
    return BonusLadder(
        min_top_up=Amount.of(ladder.min_top_up),
        max_top_up=Amount.of(ladder.max_top_up),
        tiers=[
            BonusTier(
                min_amount=Amount.of(tier.min_amount),
                bonus_percent=Decimal(percent(tier.bonus_basis_points)),
            )
            for tier in ladder.tiers
        ],
    )


async def top_up_quote(
    info: Info, amount_usd: Decimal | None, pack_id: strawberry.ID | None
) -> TopUpQuote:
    principal = info.context.caller()
    try:
        quote = await info.context.runtime.payments.quote(
            principal.organization_id, amount_usd=amount_usd, pack_id=pack_id
        )
    except (TopUpAmountError, PurchaseError) as exc:
        _, field = _purchase_error(exc)
        where = "" if field is None else f"{field}: "
        raise error(Code.BAD_USER_INPUT, f"{where}{exc}") from None
    return TopUpQuote.of(quote)


def _purchase_error(exc: TopUpAmountError | PurchaseError) -> tuple[UserErrorCode, str | None]:
    """The userError code and input field of a purchase refused."""
    if isinstance(exc, TopUpAmountError):
        return UserErrorCode.INVALID_AMOUNT, "amountUsd"
    if isinstance(exc, PackRequired):
        return UserErrorCode.PACK_REQUIRED, "amountUsd"
    if isinstance(exc, NoSuchPack):
        return UserErrorCode.NOT_FOUND, "packId"
    return UserErrorCode.INVALID_INPUT, None


@strawberry.input(
    name="BillingTransactionFilter",
    description="Narrows the billing history; every field is optional and they combine.",
)
class BillingTransactionFilter:
    kind: TransactionKind | None = strawberry.field(
        default=None, description="Transactions of this kind."
    )
    status: TransactionStatus | None = strawberry.field(
        default=None, description="Transactions in this status."
    )
    since: datetime | None = strawberry.field(
        default=None, description="Created at or after (UTC offset required)."
    )
    until: datetime | None = strawberry.field(
        default=None, description="Created before (UTC offset required), exclusive."
    )

    def wanted(self) -> TransactionFilter:
        require_zones(since=self.since, until=self.until)
        return TransactionFilter(self.kind, self.status, self.since, self.until)


async def billing_transactions(
    info: Info,
    organization_id: int,
    f: BillingTransactionFilter | None,
    first: int,
    after: str | None,
) -> Connection[BillingTransaction]:
    values = (f or BillingTransactionFilter()).wanted().values(organization_id)
    return await page_connection(
        info, TRANSACTIONS, values, first, after, each(BillingTransaction.of)
    )


async def auto_reload(info: Info, organization_id: int) -> AutoReload:
    billing = await overview_of(info, organization_id)
    settings = auto_reload_settings(billing.account)
    return AutoReload(
        enabled=settings.enabled,
        threshold=Amount.of(settings.threshold),
        amount=Amount.of(settings.amount),
        monthly_max=Amount.of(settings.monthly_max),
        reloaded_this_month=Amount.of(billing.reloaded_this_month),
        card_saved=settings.card_saved,
        failure_reason=settings.failure_reason,
    )


def transaction_row(conn: DBConnection, organization_id: int, row_id: int) -> Any:
    """The organization's billing transaction ``row_id``, or None."""
    return conn.execute(
        select(billing_t).where(
            billing_t.c.id == row_id, billing_t.c.organization_id == organization_id
        )
    ).first()


def transaction_node(
    conn: DBConnection, caller: Principal, row_id: int, _now: datetime
) -> Node | None:
    row = transaction_row(conn, caller.organization_id, row_id)
    return None if row is None else BillingTransaction.of(row)


async def _transaction(info: Info, organization_id: int, row_id: int) -> BillingTransaction:
    row = await info.context.runtime.db.read(
        lambda conn: transaction_row(conn, organization_id, row_id)
    )
    return BillingTransaction.of(row)


# -- mutations -----------------------------------------------------------------------


@strawberry.input(
    description="A top-up to start: an amountUsd in a USD wallet, a packId in a plan-credit "
    "one (exactly one of them; both or neither is INVALID_INPUT)."
)
class CreateTopUpInput:
    amount_usd: Decimal | None = strawberry.field(
        default=None,
        description='What to pay in USD, in whole cents ("99.99"), within the bonus ladder\'s '
        "minTopUp and maxTopUp; another amount is INVALID_AMOUNT and charges nothing (a "
        "string that is not a decimal number fails as a GraphQL error first). A plan-credit "
        "plan (8bit-ai) sells credit packs instead: an amount there is PACK_REQUIRED.",
    )
    pack_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Plan-credit plans: the credit pack to buy (`Plan.creditPacks`); it "
        "charges the pack's price and delivers its credits. A pack the organization's plan "
        "does not sell (another plan's, or any in a USD wallet) is NOT_FOUND.",
    )


@strawberry.type(description="The started top-up and how to pay for it.")
class CreateTopUpPayload:
    top_up: BillingTransaction | None = strawberry.field(
        default=None,
        description="PENDING until the payment succeeds; already SUCCEEDED with the fake "
        "provider of local development; FAILED when the provider refused to start it. Null "
        "when there are userErrors that stopped it before.",
    )
    client_secret: str | None = strawberry.field(
        default=None,
        description="Stripe Elements: confirm the payment with this PaymentIntent secret in "
        "the page. Null with Checkout and with the fake provider.",
    )
    checkout_url: str | None = strawberry.field(
        default=None,
        description="Stripe Checkout: send the payer to this page. Null with Elements.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why no payment started; empty on success."
    )


@strawberry.input(description="A refund of a top-up (owners and admins).")
class RefundTopUpInput:
    top_up_id: strawberry.ID = strawberry.field(description="The top-up to refund.")
    amount_usd: Decimal | None = strawberry.field(
        default=None,
        description="How much of the payment to refund, in whole cents; null or omitted: "
        "all that has not been refunded yet.",
    )
    reason: str | None = strawberry.field(
        default=None, description="Why, kept on the refund (at most 500 characters)."
    )


@strawberry.type(description="The refund made, and what it could not claw back.")
class RefundTopUpPayload:
    refund: BillingTransaction | None = strawberry.field(
        default=None, description="The REFUND transaction; null when there are userErrors."
    )
    top_up: BillingTransaction | None = strawberry.field(
        default=None, description="The top-up, with its refunded total."
    )
    clawed_back: Amount | None = strawberry.field(
        default=None, description="Credits taken back from the wallet."
    )
    not_clawed_back: Amount | None = strawberry.field(
        default=None,
        description="Credits the refund owed back that were already spent or held for calls "
        "in flight: the payer keeps what they used; this says how much that was.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was refunded; empty on success."
    )


@strawberry.input(description="Auto-reload's settings; omitted fields stay as they are.")
class UpdateAutoReloadInput:
    enabled: bool | None = strawberry.field(
        default=None,
        description="Turn it on or off. On is INVALID_INPUT where money buys no credits (a "
        "plan-credit plan without credit packs, such as 8bit-ai Enterprise).",
    )
    threshold_usd: Decimal | None = strawberry.field(
        default=None, description="A balance under this starts a reload; at least 0."
    )
    amount_usd: Decimal | None = strawberry.field(
        default=None,
        description="What each reload charges in USD: whole cents within the top-up limits "
        "(on a plan-credit plan it buys credits at the plan's pack rate).",
    )
    monthly_max_usd: Decimal | None = strawberry.field(
        default=None,
        description="The most automatic purchases (reloads and autoScale's) may charge per "
        "calendar month (UTC); at least the reload amount.",
    )


@strawberry.type(description="Auto-reload as it is now.")
class UpdateAutoReloadPayload:
    auto_reload: AutoReload | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


def payments_unavailable() -> Refused:
    return refused(UserErrorCode.PAYMENTS_UNAVAILABLE, "payments are not configured on this server")


@strawberry.type
class PaymentMutations:
    @strawberry.mutation(
        description="Start a top-up (owners and admins): a PENDING transaction and what the "
        "page needs to collect the payment. Credits land when the payment succeeds, pushed "
        "by topUpUpdated and balanceChanged."
    )
    async def create_top_up(
        self,
        info: Info,
        input: Annotated[
            CreateTopUpInput, strawberry.argument(description="The amount or the pack.")
        ],
    ) -> CreateTopUpPayload:
        payments = info.context.runtime.payments
        try:
            principal = caller(info, *ADMINS)
            try:
                quote = await payments.quote(
                    principal.organization_id, amount_usd=input.amount_usd, pack_id=input.pack_id
                )
            except (TopUpAmountError, PurchaseError) as exc:
                code, field = _purchase_error(exc)
                raise refused(code, str(exc), field) from None
            try:
                started = await payments.start_top_up(
                    principal.organization_id, quote, principal.actor
                )
            except PaymentsUnavailable:
                raise payments_unavailable() from None
            except PaymentError as exc:
                raise refused(UserErrorCode.PAYMENT_FAILED, exc.message) from None
        except Refused as refusal:
            return CreateTopUpPayload(user_errors=refusal.errors)
        top_up = await _transaction(info, principal.organization_id, started.top_up_id)
        if started.error is not None:
            return CreateTopUpPayload(
                top_up=top_up,
                user_errors=[
                    UserError(field=None, message=started.error, code=UserErrorCode.PAYMENT_FAILED)
                ],
            )
        return CreateTopUpPayload(
            top_up=top_up,
            client_secret=started.checkout.client_secret,
            checkout_url=started.checkout.checkout_url,
        )

    @strawberry.mutation(
        description="Refund a succeeded top-up, in part or in full (owners and admins): the "
        "money goes back through the payment provider, and the credits it bought, with "
        "their share of the bonus, are clawed back as far as they are unspent."
    )
    async def refund_top_up(
        self,
        info: Info,
        input: Annotated[RefundTopUpInput, strawberry.argument(description="What to refund.")],
    ) -> RefundTopUpPayload:
        payments = info.context.runtime.payments
        try:
            principal = caller(info, *ADMINS)
            parsed = parse_global_id(input.top_up_id)
            if parsed is None or parsed[0] != "BillingTransaction":
                raise refused(UserErrorCode.NOT_FOUND, "no such top-up", "topUpId")
            top_up_id = parsed[1]
            amount = usd_amounts({"amountUsd": input.amount_usd}, allow_zero=False)["amountUsd"]
            if input.reason is not None and len(input.reason) > 500:
                raise refused(UserErrorCode.INVALID_INPUT, "at most 500 characters", "reason")
            try:
                await payments.refund(
                    principal.organization_id,
                    top_up_id,
                    amount,
                    actor=principal.actor,
                    reason=input.reason,
                )
            except LookupError:
                raise refused(UserErrorCode.NOT_FOUND, "no such top-up", "topUpId") from None
            except NotRefundable as exc:
                raise refused(UserErrorCode.NOT_REFUNDABLE, str(exc), "topUpId") from None
            except RefundError as exc:
                raise refused(UserErrorCode.INVALID_AMOUNT, str(exc), "amountUsd") from None
            except PaymentsUnavailable:
                raise payments_unavailable() from None
            except PaymentError as exc:
                raise refused(UserErrorCode.PAYMENT_FAILED, exc.message) from None
        except Refused as refusal:
            return RefundTopUpPayload(user_errors=refusal.errors)
        organization_id = principal.organization_id
        top_up = await _transaction(info, organization_id, top_up_id)
        # The refund's row, whether this call or Stripe's webhook racing it wrote it.
        refund = await info.context.runtime.db.read(
            lambda conn: conn.execute(
                select(billing_t)
                .where(
                    billing_t.c.organization_id == organization_id,
                    billing_t.c.top_up_id == top_up_id,
                )
                .order_by(billing_t.c.id.desc())
                .limit(1)
            ).one()
        )
        return RefundTopUpPayload(
            refund=BillingTransaction.of(refund),
            top_up=top_up,
            clawed_back=Amount.of(-refund.credits),
            not_clawed_back=Amount.of(refund.shortfall),
        )

    @strawberry.mutation(
        description="Change auto-reload's settings (owners and admins). Saving them also "
        "lifts the pause a failed reload left."
    )
    async def update_auto_reload(
        self,
        info: Info,
        input: Annotated[
            UpdateAutoReloadInput, strawberry.argument(description="The fields to change.")
        ],
    ) -> UpdateAutoReloadPayload:
        payments = info.context.runtime.payments
        try:
            principal = caller(info, *ADMINS)
            organization_id = principal.organization_id
            changes = _auto_reload_changes(info, input)
            try:
                await payments.update_auto_reload(organization_id, changes, actor=principal.actor)
            except BelowAutoTopUpMinimum as exc:
                raise refused(UserErrorCode.INVALID_AMOUNT, str(exc), "amountUsd") from None
            except NothingToReload as exc:
                raise refused(UserErrorCode.INVALID_INPUT, str(exc), "enabled") from None
            except AutoReloadError as exc:
                raise refused(UserErrorCode.INVALID_AMOUNT, str(exc), "monthlyMaxUsd") from None
        except Refused as refusal:
            return UpdateAutoReloadPayload(user_errors=refusal.errors)
        return UpdateAutoReloadPayload(auto_reload=await auto_reload(info, organization_id))


def _auto_reload_changes(info: Info, input: UpdateAutoReloadInput) -> dict[str, Any]:
    """The settings to write, each checked; the service checks them against the rest."""
    payments = info.context.runtime.payments
    amounts = usd_amounts(
        {
            "thresholdUsd": input.threshold_usd,
            "amountUsd": input.amount_usd,
            "monthlyMaxUsd": input.monthly_max_usd,
        },
        allow_zero=True,
    )
    if input.amount_usd is not None:
        try:
            payments.ladder.amount(input.amount_usd)
        except TopUpAmountError as exc:
            raise refused(UserErrorCode.INVALID_AMOUNT, str(exc), "amountUsd") from None
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("enabled", input.enabled),
            ("threshold", amounts["thresholdUsd"]),
            ("amount", amounts["amountUsd"]),
            ("monthly_max", amounts["monthlyMaxUsd"]),
        )
        if value is not None
    }
    return changes
