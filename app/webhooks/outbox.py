"""The outbox: webhook events are written in the transaction of the change they report,
with a delivery for each endpoint subscribed, and delivered once that commits.

So an event is never lost (it commits with its change) nor sent for a change that rolled
back (it rolls back with it). The deliveries a transaction queued are noted on its
connection (``conn.info``) and handed to the worker (``app.webhooks.delivery``) when the
connection goes back to its pool, which is after the commit; a rollback drops the note.
The periodic jobs deliver whatever a note missed (a restart, another process's commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ids import to_global_id
from app.webhooks.tables import DeliveryStatus, deliveries_t, endpoints_t, events_t

# The deliveries a connection's transaction queued: (delivery id, organization id).
Queued = list[tuple[int, int]]
_QUEUED = "creditgraph.webhook_deliveries"


def body_of(event_id: int, organization_id: int, type_: str, data: Any, now: datetime) -> str:
    """The JSON every endpoint receives: the event's ID (the same on a redelivery, for
    receivers to deduplicate by), its type and time, and what it is about."""
    envelope = {
        "id": to_global_id("WebhookEvent", event_id),
        "type": type_,
        "createdAt": now.isoformat(),
        "organizationId": to_global_id("Organization", organization_id),
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":"))


def subscribers(conn: Connection, organization_id: int, type_: str) -> list[int]:
    """The organization's enabled endpoints that receive ``type_``."""
    rows = conn.execute(
        select(endpoints_t.c.id, endpoints_t.c.events).where(
            endpoints_t.c.organization_id == organization_id,
            endpoints_t.c.enabled,
            endpoints_t.c.deleted_at.is_(None),
        )
    )
    return [row.id for row in rows if type_ in row.events]


def record(
    conn: Connection,
    organization_id: int,
    type_: str,
    data: Any,
    now: datetime,
    *,
    endpoint_ids: list[int] | None = None,
) -> int | None:
    """Record an event for ``endpoint_ids`` (None: the endpoints subscribed to it) in the
    caller's transaction; its id, or None when no endpoint is to receive it."""
    targets = subscribers(conn, organization_id, type_) if endpoint_ids is None else endpoint_ids
    if not targets:
        return None
    event_id = insert_event(conn, organization_id, type_, "", now)
    body = body_of(event_id, organization_id, type_, data, now)
    conn.execute(update(events_t).where(events_t.c.id == event_id).values(body=body))
    for endpoint_id in targets:
        queue(conn, organization_id, event_id, now, endpoint_id=endpoint_id)
    return event_id


async def record_async(
    conn: AsyncConnection, organization_id: int, type_: str, data: Any, now: datetime
) -> int | None:
    """``record`` in an async transaction (``Database.write``)."""
    return await conn.run_sync(lambda sync: record(sync, organization_id, type_, data, now))


def insert_event(
    conn: Connection, organization_id: int, type_: str, body: str, now: datetime
) -> int:
    statement = insert(events_t).values(
        organization_id=organization_id, type=type_, body=body, created_at=now
    )
    return int(conn.execute(statement.returning(events_t.c.id)).scalar_one())


def queue(
    conn: Connection,
    organization_id: int,
    event_id: int,
    now: datetime,
    *,
    endpoint_id: int | None = None,
    alert_rule_id: int | None = None,
) -> int:
    """A pending delivery of the event to one destination, handed to the worker once the
    transaction commits."""
    delivery_id = int(
        conn.execute(
            insert(deliveries_t)
            .values(
                organization_id=organization_id,
                event_id=event_id,
                endpoint_id=endpoint_id,
                alert_rule_id=alert_rule_id,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(deliveries_t.c.id)
        ).scalar_one()
    )
    queued: Queued = conn.info.setdefault(_QUEUED, [])
    queued.append((delivery_id, organization_id))
    return delivery_id


def watch(engines: Iterable[Engine], deliver: Callable[[Queued], None]) -> None:
    """Hand ``deliver`` the deliveries each committed transaction on ``engines`` queued."""

    def rolled_back(conn: Connection) -> None:
        # An invalidated connection (lost, or cancelled mid-statement) has no info to
        # read; what it queued may still be handed over, and is harmless: the worker
        # claims each delivery by its row, which a rolled-back one does not have.
        if not conn.invalidated:
            conn.info.pop(_QUEUED, None)

    def checked_in(_dbapi: Any, record: Any) -> None:
        info: MutableMapping[str, Any] | None = None if record is None else record.info
        queued = None if info is None else info.pop(_QUEUED, None)
        if queued:
            deliver(queued)

    for engine in engines:
        event.listen(engine, "rollback", rolled_back)
        event.listen(engine, "checkin", checked_in)
