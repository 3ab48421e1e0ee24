"""The event bus: every committed balance change, usage record, top-up and fired alert,
pushed to subscribers.

The writer publishes after its transaction commits, never before, so a subscriber
never sees money that could still roll back. This module holds the in-process bus;
``app.events_redis`` implements the same methods across instances (Redis pub/sub).

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
EVENT_TYPES: tuple[type[Event], ...] = (BalanceChanged, UsageRecorded, TopUpUpdated, AlertFired)


@dataclass(slots=True)
class Resync:
    """Not an event: wakes a subscriber whose events may have been lost (``lagged`` is
    set), so it re-reads current state even if nothing else is pushed."""

    organization_id: int


# A subscriber that falls this far behind loses the oldest events and is told so.
QUEUE_SIZE = 1000
OVERFLOWED = f"more than {QUEUE_SIZE} events waited for this subscriber and the oldest were dropped"
DISCONNECTED = "the connection to the event bus dropped, so events may have been lost"


class Subscription:
    """One subscriber's queue of events for one organization."""

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id
        self.queue: asyncio.Queue[Event | Resync] = asyncio.Queue(QUEUE_SIZE)
        # Set when events were dropped: the subscriber should re-read current state;
        # ``gap`` says why (OVERFLOWED or DISCONNECTED).
        self.lagged = False
        self.gap = OVERFLOWED

    def offer(self, event: Event | Resync) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged, self.gap = True, OVERFLOWED
        self.queue.put_nowait(event)

    def interrupt(self) -> None:
        """Events may have been lost upstream: flag it and wake the subscriber."""
        self.offer(Resync(self.organization_id))
        self.lagged, self.gap = True, DISCONNECTED

    async def __aiter__(self) -> AsyncIterator[Event | Resync]:
        while True:
            yield await self.queue.get()


class EventBus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

    def subscribe(self, organization_id: int) -> Subscription: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...

    def subscriber_count(self) -> int: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...


class InMemoryEventBus:
    """Fan-out inside one process."""

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = {}

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            self.deliver(event)

    def deliver(self, event: Event) -> None:
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

    def has_subscribers(self, organization_id: int) -> bool:
        return organization_id in self._subscribers

    def interrupt_all(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.interrupt()

    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release in one process."""
