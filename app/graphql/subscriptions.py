"""Live pushes over WebSocket: the wallet's balance, usage records and top-ups, as they
commit."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from datetime import datetime
from typing import TypeVar

import strawberry
from graphql import ExecutionResult
from sqlalchemy.engine import Connection
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.auth import AuthError, Principal
from app.events import OVERFLOWED, AlertFired, BalanceChanged, TopUpUpdated, UsageRecorded
from app.events import Subscription as BusSubscription
from app.graphql.alerts import AlertEvent, event_node
from app.graphql.context import PEOPLE, Info
from app.graphql.enums import UsageStatus
from app.graphql.errors import Code, error
from app.graphql.money import Amount
from app.graphql.payments import BillingTransaction, transaction_row
from app.graphql.scalars import BigInt
from app.ids import to_global_id
from app.keys.access import caller_key
from app.ledger import reads
from app.runtime import Runtime

E = TypeVar("E", TopUpUpdated, AlertFired)
N = TypeVar("N")

CURRENT = "current"


@strawberry.type(description='The wallet\'s balance after a commit, or as it stands ("current").')
class BalanceChange:
    wallet_id: strawberry.ID = strawberry.field(description="The wallet's global ID.")
    balance: Amount = strawberry.field(
        description="The balance right after the change; can be below zero."
    )
    delta: Amount = strawberry.field(
        description='What the commit moved: negative when spending; zero for "current".'
    )
    reason: str = strawberry.field(
        description=(
            'The kinds of the commit\'s entries, comma-separated: "usage", "adjustment", '
            '"usage,adjustment", ... "current": the balance as it stands, sent first on '
            "subscribing and again after pushes were dropped for a subscriber falling behind."
        )
    )
    version: BigInt = strawberry.field(
        description=(
            "The wallet's version after the change (one per ledger entry, so past 32 bits in "
            "time); it only grows. Drop a push whose version is not above the last one "
            "applied: it is stale."
        )
    )
    at: datetime = strawberry.field(
        description='When it committed (UTC); for "current", when the balance was read.'
    )

    @classmethod
    def of(cls, event: BalanceChanged) -> BalanceChange:
        return cls(
            wallet_id=strawberry.ID(to_global_id("Wallet", event.wallet_id)),
            balance=Amount.of(event.balance),
            delta=Amount.of(event.delta),
            reason=event.reason,
            version=BigInt(event.version),
            at=event.at,
        )


@strawberry.type(description="A usage record, pushed as it commits.")
class RecordedUsage:
    request_id: str = strawberry.field(description="The gateway's idempotency key.")
    api_key_id: strawberry.ID = strawberry.field(description="The global ID of the key billed.")
    model: str = strawberry.field(description="The model called, as the gateway named it.")
    action: str = strawberry.field(description='The billed action, such as "llm_inference".')
    status: UsageStatus = strawberry.field(description="How the call ended.")
    cost: Amount = strawberry.field(description="What the call was charged; zero when it failed.")
    at: datetime = strawberry.field(description="When it was billed (UTC).")

    @classmethod
    def of(cls, event: UsageRecorded) -> RecordedUsage:
        return cls(
            request_id=event.request_id,
            api_key_id=strawberry.ID(to_global_id("ApiKey", event.api_key_id)),
            model=event.model,
            action=event.action,
            status=UsageStatus(event.status),
            cost=Amount.of(event.cost),
            at=event.at,
        )


async def _current(runtime: Runtime, organization_id: int) -> BalanceChange:
    row = await runtime.db.read(lambda conn: reads.wallet_of(conn, organization_id))
    return BalanceChange(
        wallet_id=strawberry.ID(to_global_id("Wallet", row.id)),
        balance=Amount.of(row.balance),
        delta=Amount.of(0),
        reason=CURRENT,
        version=BigInt(row.version),
        at=runtime.clock.now(),
    )


class Session:
    """A subscriber's sign-in, checked again before each push: a token that has expired,
    or an API key revoked or rotated since the socket connected, ends the stream."""

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self._key_checked_at = runtime.clock.now().timestamp()

    async def check(self) -> None:
        principal, now = self.principal, self.runtime.clock.now().timestamp()
        if principal.expires_at is not None and now >= principal.expires_at:
            raise error(Code.UNAUTHENTICATED, "the token has expired: subscribe again")
        interval = self.runtime.settings.subscription_recheck_seconds
        if principal.api_key_id is not None and now - self._key_checked_at >= interval:
            # A read per key and interval, not per push.
            self._key_checked_at = now
            try:
                await caller_key(self.runtime, principal)
            except AuthError as exc:
                raise error(Code.UNAUTHENTICATED, exc.message) from None


async def balance_changes(
    runtime: Runtime, principal: Principal
) -> AsyncGenerator[BalanceChange, None]:
    """The balance as it stands, then each later change."""
    organization_id, session = principal.organization_id, Session(runtime, principal)
    # Subscribed before reading, so a commit between the read and the first push is
    # queued rather than missed; the version read drops queued ones it already counts.
    subscription = runtime.bus.subscribe(organization_id)
    try:
        current = await _current(runtime, organization_id)
        yield current
        seen: int = current.version
        async for event in subscription:
            if subscription.lagged:
                # Pushes were dropped (a slow subscriber, or the Redis connection): their
                # deltas are gone, so restate the balance.
                subscription.lagged = False
                current = await _current(runtime, organization_id)
                yield current
                seen = current.version
            if isinstance(event, BalanceChanged) and event.version > seen:
                seen = event.version
                await session.check()
                yield BalanceChange.of(event)
    finally:
        runtime.bus.unsubscribe(subscription)


def _check_lag(subscription: BusSubscription, where: str) -> None:
    """Events were dropped and cannot be restated: end with an error, so the client
    subscribes again and reads the gap from ``where``."""
    if subscription.lagged:
        code = Code.RATE_LIMITED if subscription.gap == OVERFLOWED else Code.UNAVAILABLE
        raise error(code, f"{subscription.gap}: subscribe again and read {where} for the gap")


async def usage_records(
    runtime: Runtime, principal: Principal
) -> AsyncGenerator[RecordedUsage, None]:
    """Each usage record of the caller's organization; an API key sees only its own."""
    session = Session(runtime, principal)
    subscription = runtime.bus.subscribe(principal.organization_id)
    try:
        async for event in subscription:
            _check_lag(subscription, "the usage log")
            if not isinstance(event, UsageRecorded):
                continue
            if principal.api_key_id is None or principal.api_key_id == event.api_key_id:
                await session.check()
                yield RecordedUsage.of(event)
    finally:
        runtime.bus.unsubscribe(subscription)


async def _stored_rows(
    runtime: Runtime,
    principal: Principal,
    kind: type[E],
    gap: str,
    load: Callable[[Connection, E], N | None],
) -> AsyncGenerator[N, None]:
    """Each event of ``kind`` for the caller's organization, as ``load`` reads its row
    after the commit; a dropped event ends the stream (read ``gap`` for what was missed)."""
    session = Session(runtime, principal)
    subscription = runtime.bus.subscribe(principal.organization_id)
    try:
        async for event in subscription:
            _check_lag(subscription, gap)
            if not isinstance(event, kind):
                continue
            await session.check()
            node = await runtime.db.read(_bound(load, event))
            if node is not None:
                yield node
    finally:
        runtime.bus.unsubscribe(subscription)


def _bound(load: Callable[[Connection, E], N], event: E) -> Callable[[Connection], N]:
    return lambda conn: load(conn, event)


def top_up_updates(
    runtime: Runtime, principal: Principal
) -> AsyncGenerator[BillingTransaction, None]:
    """Each top-up of the caller's organization as its status (or refunded total) changes."""

    def load(conn: Connection, event: TopUpUpdated) -> BillingTransaction:
        return BillingTransaction.of(
            transaction_row(conn, principal.organization_id, event.top_up_id)
        )

    return _stored_rows(runtime, principal, TopUpUpdated, "billingTransactions", load)


def alerts_fired(runtime: Runtime, principal: Principal) -> AsyncGenerator[AlertEvent, None]:
    """Each alert event of the caller's organization as its rule fires."""

    def load(conn: Connection, event: AlertFired) -> AlertEvent | None:
        return event_node(conn, principal.organization_id, event.alert_event_id)

    return _stored_rows(runtime, principal, AlertFired, "alertEvents", load)


@strawberry.type(
    description="Live changes over a WebSocket at /graphql (graphql-transport-ws), "
    "scoped to the caller's organization."
)
class Subscription:
    # The resolvers check the caller before returning the stream, so a refusal is an
    # error of the subscribe itself rather than of its first push.
    @strawberry.subscription(
        description=(
            'The caller\'s wallet balance: first as it stands (reason "current"), then after '
            "every commit that changes it. Any signed-in role."
        )
    )
    async def balance_changed(self, info: Info) -> AsyncGenerator[BalanceChange, None]:
        principal = info.context.caller()
        return balance_changes(info.context.runtime, principal)

    @strawberry.subscription(
        description=(
            "Each usage record of the caller's organization as it is billed; an API key "
            "receives only its own. Nothing is sent for records billed before subscribing."
        )
    )
    async def usage_recorded(self, info: Info) -> AsyncGenerator[RecordedUsage, None]:
        principal = info.context.caller()
        return usage_records(info.context.runtime, principal)

    @strawberry.subscription(
        description=(
            "Each top-up of the caller's organization as it succeeds, fails or is refunded "
            "(the transaction as it stands after the change). Any signed-in role."
        )
    )
    async def top_up_updated(self, info: Info) -> AsyncGenerator[BillingTransaction, None]:
        principal = info.context.caller()
        return top_up_updates(info.context.runtime, principal)

    @strawberry.subscription(
        description="Each alert event of the caller's organization as its rule fires (the "
        "event as stored). People's roles only, as for alertEvents: an API key or the "
        "service role gets FORBIDDEN."
    )
    async def alert_fired(self, info: Info) -> AsyncGenerator[AlertEvent, None]:
        principal = info.context.caller(*PEOPLE)
        return alerts_fired(info.context.runtime, principal)


class WebSocketOnly(SchemaExtension):
    """Refuses a subscription sent over HTTP, which would otherwise fail as a fault.

    Strawberry admits subscriptions on HTTP for its multipart and SSE transports, which
    this API does not offer; executed as a plain request, the stream cannot be returned.
    """

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        http = isinstance(execution.context.request, Request)
        if http and execution.operation_type is OperationType.SUBSCRIPTION:
            message = "subscriptions run over a WebSocket at /graphql (graphql-transport-ws)"
            execution.result = ExecutionResult(None, [error(Code.BAD_USER_INPUT, message)])
        yield
