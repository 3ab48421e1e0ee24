"""The event bus across instances: Redis pub/sub, one channel per organization.

Each commit publishes its events to ``<prefix>org:<id>``, one message per organization
(a JSON array, orjson), in one pipelined round trip. Each process holds one pub/sub
connection with a pattern subscription on ``<prefix>org:*`` and hands what arrives to
its local subscribers (``InMemoryEventBus``); a message for an organization nobody here
watches is skipped before it is decoded. The pattern is subscribed once at start, so
subscribing a client is local and immediate: there is no window between a client's
subscribe and its first read in which a commit could go unseen.

The same channels carry the news of writes that publish no event (settings, keys, a
batch that moved no balance): an empty message for the organization, or on channel
``org:0`` for a write that may touch any of them. Every message received is counted as
a change (``app.changes``), so a response cached on another instance goes stale as soon
as it does here; so is a drop of the connection, when messages may have been missed.

Pub/sub keeps nothing for a connection that is down. Whenever the pattern subscription
is confirmed again (Redis restarted, the connection dropped and came back), every local
subscriber is interrupted: ``balanceChanged`` re-reads the balance, the other streams
end with an error saying to subscribe again and read the gap. Publishing never raises
into the writer, whose transaction has already committed: a failed publish is logged
and counted, and subscribers catch up as above (a balance push carries the whole
balance, so the next one corrects it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from app.changes import Changed
from app.events import EVENT_TYPES, Event, InMemoryEventBus, Subscription

log = logging.getLogger(__name__)

_BY_NAME: dict[str, type[Event]] = {cls.__name__: cls for cls in EVENT_TYPES}
# How long the listener waits for a message before checking the connection's health,
# and how long it waits before reconnecting after a failure.
POLL_SECONDS = 1.0
RECONNECT_SECONDS = 0.5
# The channel of a change that may touch any organization (ids start at 1).
EVERY_ORGANIZATION = 0


def encode(events: Sequence[Event]) -> bytes:
    return orjson.dumps([[type(event).__name__, event] for event in events])


def decode(data: bytes) -> list[Event]:
    events: list[Event] = []
    for name, fields in orjson.loads(data):
        fields["at"] = datetime.fromisoformat(fields["at"])
        events.append(_BY_NAME[name](**fields))
    return events


class RedisEventBus:
    """Publishes to Redis; delivers what Redis sends to this process's subscribers."""

    def __init__(self, url: str, prefix: str) -> None:
        # health_check_interval: an idle pub/sub connection is pinged, so a silently
        # dead one is noticed rather than waited on forever. The name shows the
        # connections in CLIENT LIST (Redis refuses spaces in it).
        self.client_name = "".join(prefix.split()) + "bus"
        self._client = redis.Redis.from_url(
            url, health_check_interval=10, client_name=self.client_name
        )
        self._prefix = prefix.encode()
        self._org_prefix = self._prefix + b"org:"
        self._local = InMemoryEventBus()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Told of each failed publish and each resubscription (``app.metrics``).
        self.on_publish_failed: Callable[[], None] | None = None
        self.on_resubscribed: Callable[[], None] | None = None
        # Told of every change another instance announced (``Changes.count``).
        self.on_changed: Callable[[Changed], None] | None = None

    def channel(self, organization_id: int) -> bytes:
        return self._org_prefix + str(organization_id).encode()

    async def start(self) -> None:
        """Subscribe, and wait until Redis confirms it (it raises if Redis is down)."""
        await self._client.ping()
        self._listener = asyncio.create_task(self._listen(), name="creditgraph-redis-bus")
        subscribed = asyncio.create_task(self._subscribed.wait())
        await asyncio.wait({subscribed, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        if not subscribed.done():
            subscribed.cancel()
            await self._listener  # it ended: raise what ended it

    async def publish(self, events: Sequence[Event]) -> None:
        by_org: defaultdict[int, list[Event]] = defaultdict(list)
        for event in events:
            by_org[event.organization_id].append(event)
        messages = [(self.channel(org), encode(batch)) for org, batch in by_org.items()]
        await self._send(messages, f"publishing {len(events)} events")

    async def announce(self, organizations: Changed) -> None:
        """Tell the other instances that writes to ``organizations`` (None: to any)
        committed here."""
        ids = organizations or (EVERY_ORGANIZATION,)
        await self._send([(self.channel(org), b"[]") for org in ids], "announcing a change")

    async def _send(self, messages: list[tuple[bytes, bytes]], what: str) -> None:
        """``messages`` (channel, data) in one pipelined round trip. A failure is logged
        and counted, never raised: the writes they tell of have committed."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for channel, data in messages:
                    pipe.publish(channel, data)
                await pipe.execute()
        except (RedisError, OSError):
            log.exception("%s to Redis failed", what)
            if self.on_publish_failed is not None:
                self.on_publish_failed()

    def subscribe(self, organization_id: int) -> Subscription:
        return self._local.subscribe(organization_id)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._local.unsubscribe(subscription)

    def subscriber_count(self) -> int:
        return self._local.subscriber_count()

    async def ready(self) -> bool:
        """Redis answers and the pattern subscription is in place."""
        if not self._subscribed.is_set():
            return False
        try:
            return bool(await asyncio.wait_for(self._client.ping(), 2))
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._listener
        await self._client.aclose()

    async def _listen(self) -> None:
        pattern = self._org_prefix + b"*"
        first = True
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while True:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        # Also sent when redis-py reconnects by itself: either way,
                        # whatever was published meanwhile is gone.
                        self._subscribed.set()
                        if not first:
                            self._resync()
                        first = False
                    elif message["type"] == "pmessage":
                        self._deliver(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                if first:
                    raise
                self._subscribed.clear()
                self._changed(None)  # what other instances write is unheard until back
                log.warning("Redis event bus connection lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _resync(self) -> None:
        log.warning("Redis event bus resubscribed; subscribers re-read current state")
        self._local.interrupt_all()
        self._changed(None)
        if self.on_resubscribed is not None:
            self.on_resubscribed()

    def _deliver(self, channel: bytes, data: bytes) -> None:
        try:
            organization_id = int(channel[len(self._org_prefix) :])
        except ValueError:
            log.exception("a message on %r was dropped: no organization id", channel)
            return
        self._changed(None if organization_id == EVERY_ORGANIZATION else (organization_id,))
        try:
            if not self._local.has_subscribers(organization_id):
                return
            events = decode(data)
        except (ValueError, KeyError, TypeError):
            log.exception("an undecodable message on %r was dropped", channel)
            return
        for event in events:
            self._local.deliver(event)

    def _changed(self, organizations: Changed) -> None:
        if self.on_changed is not None:
            self.on_changed(organizations)
