"""Top-ups, refunds and auto-reload: the flows between the payment provider and the ledger.

Money moves only in writer jobs (``app.payments.jobs``); this module talks to the
provider, keeps the billing account and the pending rows, and turns what the provider
says (a webhook, a charge's answer, a reconciliation) into those jobs.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from app import audit
from app.clock import Clock
from app.db import Database
from app.ledger.state import accounts_t, billing_t, month_start, next_month, wallets
from app.ledger.writer import Writer
from app.money import format_usd
from app.orgs.billing import account_row
from app.payments.customers import ensure_account, provider_customer
from app.payments.jobs import ApplyRefund, FailTopUp, Refunded, SettleTopUp
from app.payments.ladder import CREDITS_PER_CENT, BonusLadder, Quote
from app.payments.provider import (
    Checkout,
    Payment,
    PaymentError,
    PaymentProvider,
    PaymentStatus,
)
from app.payments.tables import PAYMENT_KINDS, BillingAccount, TransactionKind, TransactionStatus
from app.plans.catalog import Plan
from app.plans.service import Plans
from app.statements.receipts import card_columns, issue
from app.statements.tables import ReceiptKind

log = logging.getLogger(__name__)
# Who automatic purchases are by, on their billing rows and in the audit log.
RELOAD_ACTOR = "auto-reload"
SCALE_ACTOR = "auto-scale"
OVERAGE_ACTOR = "overage-billing"


class PaymentsUnavailable(Exception):
    """No payment provider is configured (production without Stripe keys)."""


class PurchaseError(ValueError):
    """A purchase that cannot be made as asked; the message says why, for the payer."""


class PackRequired(PurchaseError):
    """A dollar amount where the wallet counts plan credits, which are sold in packs."""


class NoSuchPack(PurchaseError):
    """A credit pack the organization's plan does not sell."""


class RefundError(ValueError):
    """A refund that cannot be made as asked; the message says why."""


class NotRefundable(RefundError):
    """The organization's plan makes no refunds (Bytez: "Credits are non-refundable")."""


class AutoReloadError(ValueError):
    """Auto-reload settings that could never reload: a monthly maximum under the amount."""


class BelowAutoTopUpMinimum(AutoReloadError):
    """A reload amount under the plan's auto-top-up minimum (8bit-ai: $10 Starter, $25 Pro)."""


class NothingToReload(AutoReloadError):
    """Auto-reload switched on where money buys no credits (a plan-credit wallet whose
    plan sells no packs: 8bit-ai Enterprise, or no plan)."""


AutoScaleCode = Literal["auto_scale_unavailable", "max_monthly_spend_reached", "payment_failed"]


class AutoScaleError(Exception):
    """autoScale cannot buy what a call needs: no card to charge (or none configured, or
    charges paused after a decline), past the Max Monthly Spend, or declined now.
    ``retry_at``: when waiting lets it, when it does."""

    def __init__(self, code: AutoScaleCode, message: str, retry_at: datetime | None = None):
        super().__init__(message)
        self.code: AutoScaleCode = code
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class StartedTopUp:
    top_up_id: int
    checkout: Checkout
    # Set when the provider refused to start the payment: the top-up is failed.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AutoReloadSettings:
    enabled: bool
    threshold: int
    amount: int
    monthly_max: int
    card_saved: bool
    failure_reason: str | None
    # autoScale for calls that do not say; its purchases share ``monthly_max``.
    auto_scale_default: bool


def auto_reload_settings(account: Any) -> AutoReloadSettings:
    """Auto-reload as a ``billing_accounts`` row says, or the defaults without one."""
    if account is None:
        return _DEFAULTS
    return AutoReloadSettings(
        account.auto_reload_enabled,
        account.auto_reload_threshold,
        account.auto_reload_amount,
        account.auto_reload_monthly_max,
        account.payment_method_id is not None,
        account.auto_reload_failure,
        account.auto_scale_default,
    )


def _credits_per_usd(plan: Plan | None, unit: str) -> Fraction | None:
    """What a dollar buys in the wallet (``Plan.credits_per_usd``); without a plan, a
    dollar of credits in a USD wallet and nothing in a plan-credit one."""
    if plan is not None:
        return plan.credits_per_usd
    return Fraction(1) if unit == "usd" else None


# Built once: a SQLModel instance costs a validation pass, and an organization without
# its billing row yet reads these on every WalletOverview.
_DEFAULTS = auto_reload_settings(BillingAccount(organization_id=0))


@dataclass(frozen=True, slots=True)
class _TopUpRef:
    organization_id: int
    top_up_id: int
    status: str
    amount: int
    refunded: int
    payment_intent_id: str | None
    checkout_session_id: str | None


def _charged_automatically(organization_id: int, since: datetime) -> Select[Any]:
    """What automatic purchases (auto-reloads and autoScale's) charged or are charging
    since ``since``: what the monthly maximum caps."""
    return select(func.coalesce(func.sum(billing_t.c.amount), 0)).where(
        billing_t.c.organization_id == organization_id,
        billing_t.c.kind == TransactionKind.AUTO_RELOAD,
        billing_t.c.status != TransactionStatus.FAILED,
        billing_t.c.created_at >= since,
    )


class Payments:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        clock: Clock,
        provider: PaymentProvider | None,
        ladder: BonusLadder,
        plans: Plans,
        *,
        reconcile_after: timedelta,
    ) -> None:
        self.plans = plans
        self.db = db
        self.writer = writer
        self.clock = clock
        self.provider = provider
        self.ladder = ladder
        self.reconcile_after = reconcile_after
        self._reloading: set[int] = set()
        self._scaling: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # Told when an auto-reload's charge failed, with why (``app.alerts``).
        self.on_reload_failed: Callable[[int, str | None], None] | None = None

    def _provider(self) -> PaymentProvider:
        if self.provider is None:
            raise PaymentsUnavailable("payments are not configured on this server")
        return self.provider

    # -- top-ups ---------------------------------------------------------------------

    async def _terms(self, organization_id: int) -> tuple[Plan | None, str]:
        """The organization's plan, and what its wallet counts ("usd" or "credit")."""
        plan = await self.plans.plan_of(organization_id)
        return plan, plan.unit if plan is not None else await self.plans.unit_of(organization_id)

    async def quote(
        self, organization_id: int, *, amount_usd: object = None, pack_id: str | None = None
    ) -> Quote:
        """What a purchase charges and delivers, or why it cannot be made.

        A USD wallet pays an amount within the ladder's limits (TopUpAmountError) and
        earns the ladder's bonus plus its plan's boost (ByteSpike Pro: +5%). A
        plan-credit wallet buys one of its plan's credit packs (8bit-ai: "Buy credit
        packs"): the pack's credits for its price, without ByteSpike's ladder."""
        if (amount_usd is None) == (pack_id is None):
            raise PurchaseError("give either amountUsd or packId")
        plan, unit = await self._terms(organization_id)
        if unit == "usd":
            if pack_id is not None:
                raise NoSuchPack("credit packs are for plan-credit plans: top up an amountUsd")
            boost = 0 if plan is None else plan.top_up_bonus_boost_basis_points
            return self.ladder.quote(self.ladder.amount(amount_usd), boost)
        seller = "this organization" if plan is None else plan.name
        if pack_id is None:
            raise PackRequired(
                f"{seller} sells credits in packs, not by the dollar: buy one by its packId "
                "(Plan.creditPacks)"
                if plan is not None and plan.credit_packs
                else f"{seller} sells no credit packs: its credits come with a plan or by contract"
            )
        pack = None if plan is None else plan.pack(pack_id)
        if pack is None:
            raise NoSuchPack(f"{seller} sells no such credit pack (see Plan.creditPacks)")
        return Quote(pack.price, pack.credits, 0, 0)

    async def start_top_up(self, organization_id: int, quote: Quote, actor: str) -> StartedTopUp:
        """Create a pending top-up and start its payment; with the fake provider it has
        already succeeded when this returns."""
        provider = self._provider()
        customer_id = await provider_customer(self.db, provider, organization_id)
        now = self.clock.now()
        async with self.db.write(organization_id) as conn:
            top_up_id = await conn.scalar(
                insert(billing_t)
                .values(
                    organization_id=organization_id,
                    kind=TransactionKind.TOP_UP,
                    status=TransactionStatus.PENDING,
                    amount=quote.amount,
                    credits_bought=quote.credits_bought,
                    bonus=quote.bonus,
                    bonus_basis_points=quote.bonus_basis_points,
                    provider=provider.name,
                    actor=actor,
                    created_at=now,
                )
                .returning(billing_t.c.id)
            )
            assert top_up_id is not None
            await audit.record(
                conn,
                organization_id=organization_id,
                actor=actor,
                action="top_up.create",
                target=f"top_up:{top_up_id}",
                at=now,
                after={
                    "status": TransactionStatus.PENDING,
                    "amount": quote.amount,
                    "bonus": quote.bonus,
                },
            )
        try:
            checkout = await provider.start_payment(
                top_up_id=top_up_id,
                organization_id=organization_id,
                customer_id=customer_id,
                amount_cents=quote.amount // CREDITS_PER_CENT,
            )
        except PaymentError as exc:
            job = FailTopUp(organization_id, top_up_id, exc.message, provider.name)
            await self.writer.run(job)
            return StartedTopUp(top_up_id, Checkout(None, None, None, None), exc.message)
        async with self.db.write(organization_id) as conn:
            await conn.execute(
                update(billing_t)
                .where(billing_t.c.id == top_up_id)
                .values(
                    payment_intent_id=checkout.payment_intent_id,
                    checkout_session_id=checkout.checkout_session_id,
                )
            )
        if provider.settles_at_once:
            payment = await provider.payment(
                payment_intent_id=checkout.payment_intent_id, checkout_session_id=None
            )
            await self.apply(organization_id, top_up_id, payment, actor=provider.name)
        return StartedTopUp(top_up_id, checkout)

    async def apply(
        self, organization_id: int, top_up_id: int, payment: Payment, *, actor: str
    ) -> bool:
        """Act on where a payment stands: credit it once, or record why it failed."""
        if payment.status == "succeeded":
            if payment.payment_method_id is not None:
                await self._save_card(organization_id, payment.payment_method_id)
            expiry = await self._purchase_expiry(organization_id)
            job = SettleTopUp(
                organization_id,
                top_up_id,
                payment.payment_intent_id,
                expiry,
                actor,
                payment.card,
                payment.tax_cents,
            )
            return bool(await self.writer.run(job))
        if payment.status == "failed":
            reason = payment.failure_reason or "the payment failed"
            return bool(await self.writer.run(FailTopUp(organization_id, top_up_id, reason, actor)))
        return False

    async def _save_card(self, organization_id: int, payment_method_id: str) -> None:
        """Make the card a payment saved the one automatic charges use when none is
        chosen, or when they are paused after the chosen one was declined (paying with a
        card is how a payer fixes that: it lifts the pause); a card chosen with
        ``app.payments.cards`` otherwise stays."""
        a = accounts_t.c
        async with self.db.write(organization_id) as conn:
            await ensure_account(conn, organization_id)
            await conn.execute(
                update(accounts_t)
                .where(
                    a.organization_id == organization_id,
                    a.payment_method_id.is_(None) | a.auto_reload_failure.is_not(None),
                )
                .values(payment_method_id=payment_method_id, auto_reload_failure=None)
            )

    async def _purchase_expiry(self, organization_id: int) -> timedelta | None:
        """The plan's policy (Bytez: 28 days); without a plan, the account's (never)."""
        plan = await self.plans.plan_of(organization_id)
        if plan is not None:
            days = plan.purchase_expiry_days
            return None if days is None else timedelta(days=days)
        async with self.db.reader.connect() as conn:
            days = await conn.scalar(
                select(accounts_t.c.purchase_expiry_days).where(
                    accounts_t.c.organization_id == organization_id
                )
            )
        return None if days is None else timedelta(days=days)

    # -- provider events ---------------------------------------------------------------

    async def find(
        self,
        *,
        top_up_id: int | None = None,
        payment_intent_id: str | None = None,
        checkout_session_id: str | None = None,
    ) -> _TopUpRef | None:
        """The payment a provider object refers to, by our id in its metadata or its own."""
        clauses = []
        if top_up_id is not None:
            clauses.append(billing_t.c.id == top_up_id)
        if payment_intent_id is not None:
            clauses.append(billing_t.c.payment_intent_id == payment_intent_id)
        if checkout_session_id is not None:
            clauses.append(billing_t.c.checkout_session_id == checkout_session_id)
        for clause in clauses:
            async with self.db.reader.connect() as conn:
                row = (
                    await conn.execute(
                        select(billing_t).where(clause, billing_t.c.kind.in_(PAYMENT_KINDS))
                    )
                ).first()
            if row is not None:
                return _TopUpRef(
                    row.organization_id,
                    row.id,
                    row.status,
                    row.amount,
                    row.refunded,
                    row.payment_intent_id,
                    row.checkout_session_id,
                )
        return None

    async def refunded(
        self, organization_id: int, top_up_id: int, total_cents: int, *, actor: str
    ) -> Refunded:
        """The provider reports ``total_cents`` of the payment refunded so far."""
        job = ApplyRefund(organization_id, top_up_id, total_cents * CREDITS_PER_CENT, actor)
        result: Refunded = await self.writer.run(job)
        return result

    # -- refunds -----------------------------------------------------------------------

    async def refund(
        self,
        organization_id: int,
        top_up_id: int,
        amount: int | None,
        *,
        actor: str,
        reason: str | None,
    ) -> None:
        """Refund ``amount`` credits of a payment (None: all that is left) through the
        provider, then claw back what is unspent (the refund's billing transaction says
        how much could be)."""
        top_up = await self.find(top_up_id=top_up_id)
        if top_up is None or top_up.organization_id != organization_id:
            raise LookupError("no such top-up")
        # The plan now decides (without one: manual refunds, as on ByteSpike).
        plan = await self.plans.plan_of(organization_id)
        if plan is not None and not plan.refundable:
            raise NotRefundable(f"credits are non-refundable on {plan.name}")
        if top_up.status != TransactionStatus.SUCCEEDED or top_up.payment_intent_id is None:
            raise RefundError("only a succeeded top-up can be refunded")
        left = top_up.amount - top_up.refunded
        amount = left if amount is None else amount
        if left == 0:
            raise RefundError("this top-up is already refunded in full")
        if amount % CREDITS_PER_CENT:
            raise RefundError("refunds are made in whole cents: at most 2 decimals")
        if not 0 < amount <= left:
            raise RefundError(f"at most {format_usd(left)} USD is left to refund")
        refunded_cents = top_up.refunded // CREDITS_PER_CENT
        cents = amount // CREDITS_PER_CENT
        total = await self._provider().refund(
            payment_intent_id=top_up.payment_intent_id,
            amount_cents=cents,
            refunded_cents=refunded_cents,
            # Two admins refunding the same amount from the same state make one refund.
            key=f"creditgraph-refund-{top_up_id}-{refunded_cents}-{cents}",
        )
        job = ApplyRefund(organization_id, top_up_id, total * CREDITS_PER_CENT, actor, memo=reason)
        await self.writer.run(job)

    # -- auto-reload -------------------------------------------------------------------

    async def update_auto_reload(
        self, organization_id: int, changes: dict[str, Any], *, actor: str
    ) -> None:
        """Change auto-reload's settings (audited); saving them lifts a failure's pause.

        The maximum is checked against the amount under the row's lock, so two admins
        changing one each cannot leave a maximum no reload fits in. Enabled settings
        must reload at least the plan's auto-top-up minimum, and buy something."""
        now = self.clock.now()
        plan, unit = await self._terms(organization_id)
        minimum = None if plan is None else plan.auto_top_up_min
        async with self.db.write(organization_id) as conn:
            await ensure_account(conn, organization_id)
            where = accounts_t.c.organization_id == organization_id
            before = (await conn.execute(select(accounts_t).where(where).with_for_update())).one()
            values = {f"auto_reload_{name}": value for name, value in changes.items()}
            amount = values.get("auto_reload_amount", before.auto_reload_amount)
            enabled = values.get("auto_reload_enabled", before.auto_reload_enabled)
            if plan is not None and minimum is not None and enabled and amount < minimum:
                raise BelowAutoTopUpMinimum(
                    f"{plan.name} reloads at least {format_usd(minimum)} USD at a time"
                )
            if enabled and _credits_per_usd(plan, unit) is None:
                raise NothingToReload(
                    f"{'this organization' if plan is None else plan.name} sells no "
                    "credits to reload"
                )
            if values.get("auto_reload_monthly_max", before.auto_reload_monthly_max) < amount:
                raise AutoReloadError("the monthly maximum must be at least the reload amount")
            await conn.execute(
                update(accounts_t).where(where).values(auto_reload_failure=None, **values)
            )
            await audit.record(
                conn,
                organization_id=organization_id,
                actor=actor,
                action="auto_reload.update",
                target=f"organization:{organization_id}",
                at=now,
                before={name: getattr(before, name) for name in values},
                after=values,
            )

    def low_balance(self, organization_ids: set[int]) -> None:
        """The writer's hook: these balances just fell under their reload threshold."""
        for organization_id in organization_ids - self._reloading:
            self._reloading.add(organization_id)
            task = asyncio.create_task(self._reload(organization_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reload(self, organization_id: int) -> None:
        try:
            await self.reload(organization_id)
        except Exception:
            log.exception("auto-reload for organization %d failed", organization_id)
        finally:
            self._reloading.discard(organization_id)

    async def reload(self, organization_id: int) -> int | None:
        """Charge the saved card once if the balance is under the threshold and the
        month's reloads leave room; the new top-up's id, or None when none started."""
        claimed = await self._claim(organization_id, None)
        if claimed is None:
            return None
        await self._charge(organization_id, claimed, actor=RELOAD_ACTOR)
        return claimed[0]

    async def _charge(
        self, organization_id: int, claimed: tuple[int, int, str, str], *, actor: str
    ) -> Payment:
        """Charge a claimed automatic purchase to the saved card and settle it; a decline
        pauses automatic purchases and tells the alerts."""
        top_up_id, amount, customer_id, payment_method_id = claimed
        try:
            payment = await self._provider().charge_saved(
                top_up_id=top_up_id,
                organization_id=organization_id,
                customer_id=customer_id,
                payment_method_id=payment_method_id,
                amount_cents=amount // CREDITS_PER_CENT,
            )
        except PaymentError as exc:
            payment = Payment("failed", None, failure_reason=exc.message)
        if payment.status == "failed":
            await self._pause_reload(organization_id, payment.failure_reason)
            if self.on_reload_failed is not None:
                self.on_reload_failed(organization_id, payment.failure_reason)
        await self.apply(organization_id, top_up_id, payment, actor=actor)
        return payment

    async def _claim(
        self, organization_id: int, amount: int | None
    ) -> tuple[int, int, str, str] | None:
        """Insert a pending automatic purchase in one statement that re-checks every
        condition: auto-reload's (``amount`` None: its amount, when it is on and the
        balance is under its threshold) or autoScale's (``amount``). Both need a card,
        no pause and room under the monthly maximum; a unique index allows one pending
        per organization, across instances. Its dollars buy the wallet's credits at the
        plan's rate (8bit-ai Starter's $10 buys 500 plan credits), rounded down to a
        stored unit."""
        rate = _credits_per_usd(*await self._terms(organization_id))
        if rate is None:
            return None
        now = self.clock.now()
        a = accounts_t.c
        conditions = [
            a.organization_id == organization_id,
            a.auto_reload_failure.is_(None),
            a.customer_id.is_not(None),
            a.payment_method_id.is_not(None),
        ]
        charge: ColumnElement[int]
        if amount is None:
            charge, actor, memo = a.auto_reload_amount, RELOAD_ACTOR, None
            action = "auto_reload.charge"
            conditions += [a.auto_reload_enabled, wallets.c.balance < a.auto_reload_threshold]
        else:
            # Its billing history says which purchases autoScale made.
            charge, actor, memo = literal(amount, billing_t.c.amount.type), SCALE_ACTOR, "autoScale"
            action = "auto_scale.charge"
        charged = _charged_automatically(organization_id, month_start(now)).scalar_subquery()
        conditions.append(charged + charge <= a.auto_reload_monthly_max)
        source = (
            select(
                literal(organization_id),
                literal(TransactionKind.AUTO_RELOAD.value),
                literal(TransactionStatus.PENDING.value),
                charge,
                literal(self._provider().name),
                literal(actor),
                literal(memo, billing_t.c.memo.type),
                literal(now, billing_t.c.created_at.type),
            )
            .select_from(accounts_t.join(wallets, wallets.c.organization_id == a.organization_id))
            .where(*conditions)
        )
        columns = [
            "organization_id",
            "kind",
            "status",
            "amount",
            "provider",
            "actor",
            "memo",
            "created_at",
        ]
        statement = (
            insert(billing_t)
            .from_select(columns, source)
            .returning(billing_t.c.id, billing_t.c.amount)
        )
        try:
            async with self.db.write(organization_id) as conn:
                claimed = (await conn.execute(statement)).first()
                if claimed is None:
                    return None
                top_up_id, amount = claimed
                bought = amount * rate.numerator // rate.denominator
                await conn.execute(
                    update(billing_t)
                    .where(billing_t.c.id == top_up_id)
                    .values(credits_bought=bought)
                )
                row = (
                    await conn.execute(
                        select(a.customer_id, a.payment_method_id).where(
                            a.organization_id == organization_id
                        )
                    )
                ).one()
                await audit.record(
                    conn,
                    organization_id=organization_id,
                    actor=actor,
                    action=action,
                    target=f"top_up:{top_up_id}",
                    at=now,
                    after={"status": TransactionStatus.PENDING, "amount": amount},
                )
        except IntegrityError:
            return None  # another automatic purchase is pending
        return top_up_id, amount, row.customer_id, row.payment_method_id

    # -- autoScale ---------------------------------------------------------------------

    def scaling(self, organization_id: int) -> asyncio.Lock:
        """autoScale's purchases one at a time per organization in this process: a call
        that waited on another's may find its tier unlocked by it."""
        lock = self._scaling.get(organization_id)
        if lock is None:
            lock = self._scaling[organization_id] = asyncio.Lock()
        return lock

    def auto_scale_charge(self, unlock: int) -> int:
        """What autoScale charges to buy ``unlock`` credits: whole cents, rounded up (a
        card is charged cents), and at least the smallest top-up."""
        cents = -(-unlock // CREDITS_PER_CENT)
        return max(cents * CREDITS_PER_CENT, self.ladder.min_top_up)

    async def check_auto_scale(self, organization_id: int, amount: int) -> None:
        """Whether autoScale may charge ``amount`` now; AutoScaleError says why not."""
        if self.provider is None:
            raise AutoScaleError(
                "auto_scale_unavailable", "payments are not configured on this server"
            )
        now = self.clock.now()
        since = month_start(now)
        account, charged = await self.db.read(
            lambda conn: (
                account_row(conn, organization_id),
                int(conn.scalar(_charged_automatically(organization_id, since)) or 0),
            )
        )
        settings = auto_reload_settings(account)
        if not settings.card_saved:
            raise AutoScaleError(
                "auto_scale_unavailable",
                "autoScale buys credits with auto-reload's card and none is saved for it: "
                "choose a saved card (setDefaultPaymentMethod) or pay a top-up by card",
            )
        if settings.failure_reason is not None:
            raise AutoScaleError(
                "auto_scale_unavailable",
                f"automatic purchases are paused after a failed charge "
                f"({settings.failure_reason}): save auto-reload's settings or a new card",
            )
        if amount > self.ladder.max_top_up:
            raise AutoScaleError(
                "auto_scale_unavailable",
                f"autoScale needs a purchase of {format_usd(amount)} USD, more than one "
                f"top-up buys ({format_usd(self.ladder.max_top_up)} USD)",
            )
        if charged + amount > settings.monthly_max:
            left = max(settings.monthly_max - charged, 0)
            raise AutoScaleError(
                "max_monthly_spend_reached",
                f"autoScale needs a purchase of {format_usd(amount)} USD and the Max "
                f"Monthly Spend (auto-reload's monthly maximum, "
                f"{format_usd(settings.monthly_max)} USD) has {format_usd(left)} USD left "
                "this month",
                next_month(now),
            )

    async def auto_scale(self, organization_id: int, amount: int) -> PaymentStatus:
        """Buy ``amount`` credits for autoScale now: an automatic purchase charged to the
        saved card. "succeeded": its credits have landed and count toward the unlock
        tier; "pending": not yet (the provider is still at it, or another automatic
        purchase was pending). AutoScaleError when it may not, or the card is declined."""
        await self.check_auto_scale(organization_id, amount)
        claimed = await self._claim(organization_id, amount)
        if claimed is None:  # lost a race: past the maximum now, or one is pending
            await self.check_auto_scale(organization_id, amount)
            return "pending"
        payment = await self._charge(organization_id, claimed, actor=SCALE_ACTOR)
        if payment.status == "failed":
            reason = payment.failure_reason or "the charge failed"
            raise AutoScaleError("payment_failed", f"the saved card was declined: {reason}")
        return payment.status

    async def set_auto_scale_default(
        self, organization_id: int, enabled: bool, *, actor: str
    ) -> None:
        """Make autoScale the default for calls that do not say, or stop (audited)."""
        async with self.db.write(organization_id) as conn:
            await ensure_account(conn, organization_id)
            where = accounts_t.c.organization_id == organization_id
            before = await conn.scalar(
                select(accounts_t.c.auto_scale_default).where(where).with_for_update()
            )
            await conn.execute(update(accounts_t).where(where).values(auto_scale_default=enabled))
            await audit.record(
                conn,
                organization_id=organization_id,
                actor=actor,
                action="auto_scale.update",
                target=f"organization:{organization_id}",
                at=self.clock.now(),
                before={"auto_scale_default": before},
                after={"auto_scale_default": enabled},
            )

    async def _pause_reload(self, organization_id: int, reason: str | None) -> None:
        async with self.db.write(organization_id) as conn:
            await conn.execute(
                update(accounts_t)
                .where(accounts_t.c.organization_id == organization_id)
                .values(auto_reload_failure=(reason or "the charge failed")[:500])
            )

    # -- reconciliation ----------------------------------------------------------------

    async def reconcile(self) -> int:
        """Ask the provider about payments pending longer than they should be (a lost
        webhook); returns how many changed."""
        if self.provider is None:
            return 0
        cutoff = self.clock.now() - self.reconcile_after
        async with self.db.reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        billing_t.c.id,
                        billing_t.c.organization_id,
                        billing_t.c.payment_intent_id,
                        billing_t.c.checkout_session_id,
                    ).where(
                        billing_t.c.status == TransactionStatus.PENDING,
                        billing_t.c.kind.in_(PAYMENT_KINDS),
                        billing_t.c.created_at <= cutoff,
                        billing_t.c.provider == self.provider.name,
                    )
                )
            ).all()
        changed = 0
        for row in rows:
            if row.payment_intent_id is None and row.checkout_session_id is None:
                # The payment never started at the provider: nothing can complete it.
                payment = Payment("failed", None, failure_reason="the payment was not started")
            else:
                try:
                    payment = await self.provider.payment(
                        payment_intent_id=row.payment_intent_id,
                        checkout_session_id=row.checkout_session_id,
                    )
                except PaymentError:
                    log.warning("could not reconcile top-up %d; will retry", row.id)
                    continue
            changed += await self.apply(row.organization_id, row.id, payment, actor="reconcile")
        return changed

    async def bill_overages(self) -> int:
        """Charge the saved card for overage that closed periods left pending (the
        ledger settled those credits when the period closed; this collects the USD).
        Without a card they stay pending, shown on the billing history."""
        provider = self.provider
        if provider is None:
            return 0
        async with self.db.reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        billing_t.c.id,
                        billing_t.c.organization_id,
                        billing_t.c.amount,
                        billing_t.c.credits,
                        billing_t.c.memo,
                        accounts_t.c.customer_id,
                        accounts_t.c.payment_method_id,
                    )
                    .join(accounts_t, accounts_t.c.organization_id == billing_t.c.organization_id)
                    .where(
                        billing_t.c.kind == TransactionKind.OVERAGE,
                        billing_t.c.status == TransactionStatus.PENDING,
                        accounts_t.c.payment_method_id.is_not(None),
                    )
                )
            ).all()
        billed = 0
        for row in rows:
            cents = -(-row.amount // CREDITS_PER_CENT)  # a card is charged whole cents: up
            try:
                payment = await provider.charge_saved(
                    top_up_id=row.id,
                    organization_id=row.organization_id,
                    customer_id=row.customer_id,
                    payment_method_id=row.payment_method_id,
                    amount_cents=cents,
                )
            except PaymentError as exc:
                payment = Payment("failed", None, failure_reason=exc.message)
            if payment.status == "pending":
                continue
            now = self.clock.now()
            async with self.db.write(row.organization_id) as conn:
                updated = await conn.execute(
                    update(billing_t)
                    .where(
                        billing_t.c.id == row.id, billing_t.c.status == TransactionStatus.PENDING
                    )
                    .values(
                        status=payment.status,
                        payment_intent_id=payment.payment_intent_id,
                        failure_reason=payment.failure_reason,
                        settled_at=now,
                    )
                )
                if updated.rowcount and payment.status == "succeeded":
                    receipt = _overage_receipt(row, cents, provider.name, payment, now)
                    await conn.run_sync(issue, [receipt])
                if updated.rowcount:
                    await audit.record(
                        conn,
                        organization_id=row.organization_id,
                        actor=OVERAGE_ACTOR,
                        action="overage.charge",
                        target=f"top_up:{row.id}",
                        at=now,
                        before={"status": TransactionStatus.PENDING},
                        after={
                            "status": payment.status,
                            "amount": row.amount,
                            "failure_reason": payment.failure_reason,
                        },
                    )
            billed += payment.status == "succeeded"
        return billed

    async def stop(self) -> None:
        """Let charges in flight finish: each is money the payer was told about."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.provider is not None:
            await self.provider.close()


def _overage_receipt(
    row: Any, cents: int, provider: str, payment: Payment, at: datetime
) -> dict[str, Any]:
    """The receipt of a closed period's overage charged to the saved card: the whole
    cents charged, for the plan credits the period used past its allocation."""
    return {
        "organization_id": row.organization_id,
        "kind": ReceiptKind.OVERAGE,
        "transaction_id": row.id,
        "provider": provider,
        "provider_reference": payment.payment_intent_id,
        "description": row.memo or "Overage",
        "currency": "USD",
        "amount": cents * CREDITS_PER_CENT,
        "credits": row.credits,
        "issued_at": at,
    } | card_columns(payment.card)
