"""The caller, its organization and the organization's wallet: balance, lots, ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

import strawberry

from app.auth import LEDGER_READERS
from app.graphql.alerts import AlertEvent, AlertRule, alert_events, alert_rules
from app.graphql.analytics import (
    Granularity,
    GranularityArg,
    SinceArg,
    UntilArg,
    UsageSummary,
    usage_summary,
)
from app.graphql.audit import AuditEvent, AuditFilter, audit_page
from app.graphql.auto_scale import AutoScale, auto_scale_of
from app.graphql.cards import PaymentMethod, payment_methods
from app.graphql.context import Info
from app.graphql.enums import EntryKind, Role
from app.graphql.keys import ApiKey, api_key_page
from app.graphql.money import Amount, amount
from app.graphql.overview import first_lots, overview_of, wallet_row
from app.graphql.payments import (
    AutoReload,
    BillingTransaction,
    BillingTransactionFilter,
    auto_reload,
    billing_transactions,
)
from app.graphql.plans import Entitlement, PlanSubscription, entitlement_of, subscription_of
from app.graphql.relay import (
    After,
    Connection,
    First,
    Node,
    connection,
    each,
    page_connection,
    page_size,
    require_zones,
    selects,
)
from app.graphql.statements import Receipt, Statement, receipt_page, statement_page
from app.graphql.usage import UsageFilterInput, UsageRecord, usage_page
from app.graphql.webhooks import WebhookEndpoint, webhook_endpoints
from app.ids import to_global_id
from app.ledger import reads
from app.ledger.state import month_of, next_month
from app.orgs.service import OrgRef
from app.pages import Page


@strawberry.type(
    description="Credits granted together, with one expiry; spent soonest-expiring first."
)
class CreditLot(Node):
    source: EntryKind = strawberry.field(description="The kind of entry that granted it.")
    original: Amount = strawberry.field(description="What the lot granted.")
    remaining: Amount = strawberry.field(description="What is left to spend.")
    expires_at: datetime | None = strawberry.field(description="UTC; null: never expires.")
    created_at: datetime = strawberry.field(description="UTC.")

    @classmethod
    def of(cls, row: Any) -> CreditLot:
        return cls(
            id=strawberry.ID(to_global_id("CreditLot", row.id)),
            source=EntryKind(row.source),
            original=Amount.of(row.original),
            remaining=Amount.of(row.remaining),
            expires_at=row.expires_at,
            created_at=row.created_at,
        )


@strawberry.type(description="An append-only movement of credits; never changed, never deleted.")
class LedgerEntry(Node):
    kind: EntryKind = strawberry.field(description="Why it moved money.")
    amount: Amount = strawberry.field(description="Positive adds credits, negative takes them.")
    balance_after: Amount = strawberry.field(description="The wallet's balance right after it.")
    reference: str = strawberry.field(
        description='What caused it: "usage:<request id>", "lot:<id>", "adjustment:<actor>", '
        '"grant:<actor>", "promo:<CODE>:<n>", ...'
    )
    memo: str | None = strawberry.field(
        description="A person's reason, for adjustments and grants; the promo code, for its "
        "credits."
    )
    created_at: datetime = strawberry.field(description="UTC.")

    @classmethod
    def of(cls, row: Any) -> LedgerEntry:
        return cls(
            id=strawberry.ID(to_global_id("LedgerEntry", row.id)),
            kind=EntryKind(row.kind),
            amount=Amount.of(row.amount),
            balance_after=Amount.of(row.balance_after),
            reference=row.reference,
            memo=row.memo,
            created_at=row.created_at,
        )


@strawberry.input(
    name="LedgerEntryFilter",
    description="Narrows the ledger; every field is optional and they combine.",
)
class LedgerEntryFilter:
    kind: EntryKind | None = strawberry.field(default=None, description="Entries of this kind.")
    since: datetime | None = strawberry.field(
        default=None, description="Written at or after (UTC offset required)."
    )
    until: datetime | None = strawberry.field(
        default=None, description="Written before (UTC offset required), exclusive."
    )

    def wanted(self) -> reads.EntryFilter:
        require_zones(since=self.since, until=self.until)
        return reads.EntryFilter(self.kind, self.since, self.until)


@strawberry.type(
    description="The organization's prepaid credits; the balance is the sum of its ledger."
)
class Wallet(Node):
    balance: Amount = strawberry.field(
        description="Can go below zero: a completed call always bills."
    )
    held: Amount = strawberry.field(description="Reserved by authorized calls still in flight.")
    available: Amount = strawberry.field(description="Balance minus held: what new calls can use.")
    _wallet_id: strawberry.Private[int]
    _org_id: strawberry.Private[int]

    @strawberry.field(
        description="What the organization paid for credits in the last 28 days (top-ups "
        "and auto-reloads that succeeded, net of refunds; bonuses and grants not counted). "
        "It decides the unlock tier where a plan has them."
    )
    async def purchased_last_28_days(self, info: Info) -> Amount:
        return Amount.of((await overview_of(info, self._org_id)).purchased_last_28_days)

    @strawberry.field(
        description="Credit lots, newest first; by default only those with credits left."
    )
    async def lots(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        include_spent: Annotated[
            bool, strawberry.argument(description="Also the lots spent or expired to zero.")
        ] = False,
    ) -> Connection[CreditLot]:
        prefetched = after is None and not include_spent and not selects(info, "totalCount")
        if prefetched and page_size(first) <= reads.FIRST_LOTS:
            # The default first page was read with the wallet row (``overview.py``).
            page = await first_lots(info, self._org_id)
            rows = page.rows[:first]
            lots = [CreditLot.of(row) for row in rows]
            has_next = page.has_next or len(page.rows) > first
            cursor = reads.LOTS.cursor
            return connection(Page(rows, has_next), lots, 0, cursor, cursor)
        values = {"wallet_id": self._wallet_id, "above": None if include_spent else 0}
        return await page_connection(info, reads.LOTS, values, first, after, each(CreditLot.of))

    @strawberry.field(
        description="The ledger, newest first (not for an API key: FORBIDDEN, since it "
        "lists every key's calls). As CSV, with the same filter: GET /api/v1/me/ledger.csv."
    )
    async def entries(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        filter: Annotated[
            LedgerEntryFilter | None, strawberry.argument(description="Null: every entry.")
        ] = None,
    ) -> Connection[LedgerEntry]:
        info.context.caller(*LEDGER_READERS)
        wallet_id = self._wallet_id
        wanted = (filter or LedgerEntryFilter()).wanted()
        # Unfiltered, the count is the wallet's version: one row read, not the ledger.
        unfiltered = wanted == reads.EntryFilter()
        return await page_connection(
            info,
            reads.ENTRIES,
            wanted.values(wallet_id),
            first,
            after,
            each(LedgerEntry.of),
            (lambda conn: reads.entry_count(conn, wallet_id)) if unfiltered else None,
        )


@strawberry.type(
    description="The organization's hard cap on usage per calendar month (UTC). It counts "
    "in the organization's unit: USD, or plan credits on a plan-credit rate card "
    "(8bit-ai), where the cap includes the allocation and the overage past it is what "
    "the cap leaves above the allocation, billed at Plan.overageUsdPerCredit. At the cap "
    "non-critical actions are refused (429 spend_cap_reached); critical ones (API "
    "requests) keep running."
)
class SpendCap:
    unit: str = strawberry.field(
        description='What monthlyLimit and spentThisMonth count: "usd", or "credit" (plan '
        "credits: their `usd` field counts plan credits, not dollars)."
    )
    monthly_limit: Amount | None = strawberry.field(description="Null: no cap.")
    spent_this_month: Amount = strawberry.field(description="Usage billed since the month began.")


async def spend_cap_of(info: Info, organization_id: int) -> SpendCap:
    row = await wallet_row(info, organization_id)
    now = info.context.runtime.clock.now()
    this_month = month_of(now)
    info.context.changes_at(next_month(now))  # what was spent this month starts again
    return SpendCap(
        unit=info.context.runtime.prices.unit(row.rate_card),
        monthly_limit=amount(row.spend_cap_monthly),
        spent_this_month=Amount.of(row.month_spent if row.month == this_month else 0),
    )


def wallet_node(row: Any) -> Wallet:
    return Wallet(
        id=strawberry.ID(to_global_id("Wallet", row.id)),
        balance=Amount.of(row.balance),
        held=Amount.of(row.held),
        available=Amount.of(row.balance - row.held),
        _wallet_id=row.id,
        _org_id=row.organization_id,
    )


@strawberry.type(description="A customer of the platform: one wallet, its keys, its settings.")
class Organization(Node):
    slug: str = strawberry.field(description="Unique, URL-safe name.")
    name: str = strawberry.field(description="Display name.")
    _org_id: strawberry.Private[int]

    @classmethod
    def of(cls, org: OrgRef) -> Organization:
        return cls(
            id=strawberry.ID(to_global_id("Organization", org.id)),
            slug=org.slug,
            name=org.name,
            _org_id=org.id,
        )

    @strawberry.field(description="The organization's wallet.")
    async def wallet(self, info: Info) -> Wallet:
        if selects(info, "lots"):
            # Asked for in the same tick as the row, so both come from one read.
            row, _ = await asyncio.gather(
                wallet_row(info, self._org_id), first_lots(info, self._org_id)
            )
        else:
            row = await wallet_row(info, self._org_id)
        return wallet_node(row)

    @strawberry.field(description="The monthly spend cap and what counts against it.")
    async def spend_cap(self, info: Info) -> SpendCap:
        return await spend_cap_of(info, self._org_id)

    @strawberry.field(
        description="The per-call usage log, newest first by billing time. An API key "
        "sees only its own calls."
    )
    async def usage(
        self,
        info: Info,
        filter: Annotated[
            UsageFilterInput | None, strawberry.argument(description="Null: every call.")
        ] = None,
        first: First = 50,
        after: After = None,
    ) -> Connection[UsageRecord]:
        return await usage_page(info, self._org_id, filter, first, after)

    @strawberry.field(
        description="Spend and calls over a time range: totals, a series, breakdowns by "
        "model, action and API key, and a forecast of the period's spend. Read from hourly "
        "and daily rollups, never from the usage log. An API key sees only its own figures."
    )
    async def usage_summary(
        self,
        info: Info,
        since: SinceArg,
        until: UntilArg,
        granularity: GranularityArg = Granularity.DAY,
    ) -> UsageSummary:
        return await usage_summary(info, self._org_id, since, until, granularity)

    @strawberry.field(
        description="API keys, newest first. Every role sees all of the organization's keys "
        "but an API key, which sees only itself. Secrets are never listed."
    )
    async def api_keys(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
    ) -> Connection[ApiKey]:
        return await api_key_page(info, self._org_id, first, after)

    @strawberry.field(
        description="Top-ups, refunds, adjustments and expiries, newest first: every wallet "
        "movement that is not an API call, with each top-up's payment status. As CSV, with "
        "the same filter: GET /api/v1/me/billing/transactions.csv."
    )
    async def billing_transactions(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        filter: Annotated[
            BillingTransactionFilter | None,
            strawberry.argument(description="Null: every transaction."),
        ] = None,
    ) -> Connection[BillingTransaction]:
        return await billing_transactions(info, self._org_id, filter, first, after)

    @strawberry.field(
        description="Receipts of payments and refunds, newest first. People's roles only: "
        "for an API key or the service role it is null with a FORBIDDEN error."
    )
    async def receipts(
        self, info: Info, first: First = 50, after: After = None
    ) -> Connection[Receipt] | None:
        return await receipt_page(info, self._org_id, first, after)

    @strawberry.field(
        description="Monthly statements (calendar months, UTC), newest first: the month "
        "running, then every closed one back to the organization's first. People's roles "
        "only, as receipts."
    )
    async def statements(
        self, info: Info, first: First = 12, after: After = None
    ) -> Connection[Statement] | None:
        return await statement_page(info, self._org_id, first, after)

    @strawberry.field(description="The organization's plan; null: none (prepaid only).")
    async def subscription(self, info: Info) -> PlanSubscription | None:
        return await subscription_of(info, self._org_id)

    @strawberry.field(
        description="What the plan lets the organization run now (unlock tier, open-model "
        "size, concurrency); null without a plan."
    )
    async def entitlement(self, info: Info) -> Entitlement | None:
        return await entitlement_of(info, self._org_id)

    @strawberry.field(
        description="Alert rules, oldest first (deleted ones are not listed). People's roles "
        "only: an API key or the service role gets FORBIDDEN."
    )
    async def alert_rules(self, info: Info) -> list[AlertRule]:
        return await alert_rules(info, self._org_id)

    @strawberry.field(
        description="Events the alert rules fired, newest first. People's roles only."
    )
    async def alert_events(
        self, info: Info, first: First = 50, after: After = None
    ) -> Connection[AlertEvent]:
        return await alert_events(info, self._org_id, first, after)

    @strawberry.field(description="Automatic top-ups when the balance runs low.")
    async def auto_reload(self, info: Info) -> AutoReload:
        return await auto_reload(info, self._org_id)

    @strawberry.field(
        description="The cards saved for the organization's payments, newest first, as the "
        "payment provider has them now; isDefault marks the one auto-reload charges. Owners "
        "and admins only: for other roles it is null with a FORBIDDEN error. Empty before "
        "a first payment by card; UNAVAILABLE when the provider cannot be reached."
    )
    async def payment_methods(self, info: Info) -> list[PaymentMethod] | None:
        return await payment_methods(info, self._org_id)

    @strawberry.field(
        description="autoScale: buying past the plan's open-model limits, by default or not."
    )
    async def auto_scale(self, info: Info) -> AutoScale:
        return await auto_scale_of(info, self._org_id)

    @strawberry.field(
        description="The audit log of changes to keys, caps, plans, settings and money, newest "
        "first. Owners and admins only: for other roles it is null with a FORBIDDEN error."
    )
    async def audit_events(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        filter: AuditFilter = None,
    ) -> Connection[AuditEvent] | None:
        return await audit_page(info, self._org_id, filter, first, after)

    @strawberry.field(
        description="Webhook endpoints subscribed to the organization's events, oldest first "
        "(deleted ones are not listed), each with its deliveries. Owners and admins only: "
        "for other roles it is null with a FORBIDDEN error."
    )
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint] | None:
        return await webhook_endpoints(info, self._org_id)


@strawberry.type(description="Who is calling, and in which organization.")
class Viewer:
    id: strawberry.ID = strawberry.field(
        description='The caller: the token\'s subject, or "api_key:<id>" for an API key.'
    )
    role: Role = strawberry.field(description="What the caller may do.")
    _org_id: strawberry.Private[int]

    @strawberry.field(
        description="The caller's organization; every query is scoped to it.",
        graphql_type=Organization,
    )
    def organization(self, info: Info) -> Organization | Awaitable[Organization]:
        # Authenticating the caller has cached its organization: answered at once, with
        # no awaitable for every dashboard query to wait on.
        orgs = info.context.runtime.orgs
        known = orgs.known(self._org_id)
        if known is not None:
            return Organization.of(known)

        async def load() -> Organization:
            return Organization.of(await orgs.by_id(self._org_id))

        return load()
