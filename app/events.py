"""The event bus: every committed balance change, usage record, top-up and fired alert,
pushed to subscribers.

The writer publishes after its transaction commits, never before, so a subscriber
never sees money that could still roll back. This module holds the in-process bus;
a Redis bus implements the same two methods for several instances.

Events, like the writer's other per-call values, are plain slots classes rather than
frozen dataclasses, which cost five times as much to build; treat them as read-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(slots=True)
class BalanceChanged:
    """A wallet's balance after one commit; ``version`` orders pushes per wallet."""

    organization_id: int
    wallet_id: int
    balance: int
    delta: int
    reason: str
    version: int
    at: datetime


@dataclass(slots=True)
class UsageRecorded:
    organization_id: int
    api_key_id: int
    request_id: str
    model: str
    action: str
    status: str
    cost: int
    at: datetime


@dataclass(slots=True)
class TopUpUpdated:
    """A top-up reached a new status (or was refunded): dashboards waiting on a payment."""

    organization_id: int
    top_up_id: int
    status: str
    amount: int
    refunded: int
    failure_reason: str | None
    at: datetime


@dataclass(slots=True)
class AlertFired:
    """An alert rule fired: its event is stored (``alert_events``) before this is sent."""

    organization_id: int
    alert_event_id: int
    rule_id: int
    kind: str
    message: str
    value: int | None
    at: datetime


Event = BalanceChanged | UsageRecorded | TopUpUpdated | AlertFired

# A subscriber that falls this far behind loses the oldest events and is told so.
QUEUE_SIZE = 1000


class Subscription:
    """One subscriber's queue of events for one organization."""

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        # Set when events were dropped: the subscriber should re-read current state.
        self.lagged = False

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged = True
        self.queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

    def subscribe(self, organization_id: int) -> Subscription: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...


class InMemoryEventBus:
    """Fan-out inside one process."""

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = {}

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            for subscription in self._subscribers.get(event.organization_id, ()):
                subscription.offer(event)

    def subscribe(self, organization_id: int) -> Subscription:
        subscription = Subscription(organization_id)
        self._subscribers.setdefault(organization_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.organization_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.organization_id]
