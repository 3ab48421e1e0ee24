"""Webhook endpoints: saving them (audited), a test event, and redelivering an event.

Each function works in the caller's transaction; the GraphQL layer has checked the role,
the URL (``app.webhooks.urls.check_url``) and the event types.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app import audit
from app.keys.service import KeyVault
from app.webhooks import outbox
from app.webhooks.signing import new_secret, seal
from app.webhooks.tables import TEST_EVENT, deliveries_t, endpoints_t, events_t

MAX_ENDPOINTS = 16  # per organization, as Stripe allows


class UnknownEndpoint(LookupError):
    pass


class UnknownEvent(LookupError):
    """No such event was ever sent to that endpoint."""


class TooManyEndpoints(ValueError):
    pass


class EndpointDisabled(ValueError):
    pass


def endpoint_values(row: Any) -> dict[str, Any]:
    """An endpoint as its audit records show it (never its secret)."""
    return {
        "url": row.url,
        "description": row.description,
        "events": list(row.events),
        "enabled": row.enabled,
    }


def _live(organization_id: int, endpoint_id: int) -> Any:
    return select(endpoints_t).where(
        endpoints_t.c.id == endpoint_id,
        endpoints_t.c.organization_id == organization_id,
        endpoints_t.c.deleted_at.is_(None),
    )


async def get_endpoint(conn: AsyncConnection, organization_id: int, endpoint_id: int) -> Any:
    """The endpoint's row, if it is the organization's and not deleted; else UnknownEndpoint."""
    row = (await conn.execute(_live(organization_id, endpoint_id))).first()
    if row is None:
        raise UnknownEndpoint(f"no webhook endpoint {endpoint_id}")
    return row


async def _audit(
    conn: AsyncConnection,
    action: str,
    organization_id: int,
    endpoint_id: int,
    actor: str,
    now: datetime,
    **values: Any,
) -> None:
    await audit.record(
        conn,
        organization_id=organization_id,
        actor=actor,
        action=action,
        target=f"webhook_endpoint:{endpoint_id}",
        at=now,
        **values,
    )


async def create_endpoint(
    conn: AsyncConnection,
    vault: KeyVault,
    *,
    organization_id: int,
    url: str,
    events: Sequence[str],
    description: str | None,
    actor: str,
    now: datetime,
) -> tuple[Any, str]:
    """A new enabled endpoint and its signing secret (shown only now; kept sealed)."""
    count = await conn.scalar(
        select(func.count())
        .select_from(endpoints_t)
        .where(endpoints_t.c.organization_id == organization_id, endpoints_t.c.deleted_at.is_(None))
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"at most {MAX_ENDPOINTS} webhook endpoints")
    secret = new_secret()
    endpoint_id = await conn.scalar(
        insert(endpoints_t)
        .values(
            organization_id=organization_id,
            url=url,
            description=description,
            events=list(events),
            secret_encrypted=seal(vault, secret),
            enabled=True,
            created_by=actor,
            created_at=now,
        )
        .returning(endpoints_t.c.id)
    )
    assert endpoint_id is not None
    row = await get_endpoint(conn, organization_id, endpoint_id)
    await _audit(
        conn,
        "webhook_endpoint.create",
        organization_id,
        endpoint_id,
        actor,
        now,
        after=endpoint_values(row),
    )
    return row, secret


async def update_endpoint(
    conn: AsyncConnection,
    *,
    organization_id: int,
    endpoint_id: int,
    changes: dict[str, Any],
    actor: str,
    now: datetime,
) -> Any:
    """Change ``url``, ``description``, ``events`` or ``enabled``; the row as it is now."""
    before = await get_endpoint(conn, organization_id, endpoint_id)
    if not changes:
        return before
    await conn.execute(update(endpoints_t).where(endpoints_t.c.id == endpoint_id).values(**changes))
    row = await get_endpoint(conn, organization_id, endpoint_id)
    await _audit(
        conn,
        "webhook_endpoint.update",
        organization_id,
        endpoint_id,
        actor,
        now,
        before=endpoint_values(before),
        after=endpoint_values(row),
    )
    return row


async def delete_endpoint(
    conn: AsyncConnection, *, organization_id: int, endpoint_id: int, actor: str, now: datetime
) -> None:
    """Stop delivering to the endpoint; its deliveries stay, and pending ones end."""
    before = await get_endpoint(conn, organization_id, endpoint_id)
    await conn.execute(
        update(endpoints_t).where(endpoints_t.c.id == endpoint_id).values(deleted_at=now)
    )
    await _audit(
        conn,
        "webhook_endpoint.delete",
        organization_id,
        endpoint_id,
        actor,
        now,
        before=endpoint_values(before),
    )


async def _enabled(conn: AsyncConnection, organization_id: int, endpoint_id: int) -> None:
    if not (await get_endpoint(conn, organization_id, endpoint_id)).enabled:
        raise EndpointDisabled("the endpoint is disabled: enable it first")


async def send_test(
    conn: AsyncConnection, *, organization_id: int, endpoint_id: int, actor: str, now: datetime
) -> int:
    """A ``webhook.test`` event to the endpoint alone, whatever it subscribes to; the
    delivery's id."""
    await _enabled(conn, organization_id, endpoint_id)
    event_id = await conn.run_sync(
        lambda sync: outbox.record(
            sync,
            organization_id,
            TEST_EVENT,
            {"message": "A test event from creditgraph."},
            now,
            endpoint_ids=[endpoint_id],
        )
    )
    assert event_id is not None
    await _audit(
        conn,
        "webhook_endpoint.test",
        organization_id,
        endpoint_id,
        actor,
        now,
        after={"event_id": event_id},
    )
    return await _delivery_of(conn, event_id, endpoint_id)


async def redeliver(
    conn: AsyncConnection,
    *,
    organization_id: int,
    event_id: int,
    endpoint_id: int,
    actor: str,
    now: datetime,
) -> int:
    """Send an event the endpoint was sent before again, as a new delivery with attempts
    of its own and the same body (the same event ID); the delivery's id."""
    await _enabled(conn, organization_id, endpoint_id)
    sent = await conn.scalar(
        select(deliveries_t.c.id)
        .join(events_t, events_t.c.id == deliveries_t.c.event_id)
        .where(
            deliveries_t.c.event_id == event_id,
            deliveries_t.c.endpoint_id == endpoint_id,
            events_t.c.organization_id == organization_id,
        )
        .limit(1)
    )
    if sent is None:
        raise UnknownEvent("that event was not sent to that endpoint")
    delivery_id = await conn.run_sync(
        lambda sync: outbox.queue(sync, organization_id, event_id, now, endpoint_id=endpoint_id)
    )
    await _audit(
        conn,
        "webhook_endpoint.redeliver",
        organization_id,
        endpoint_id,
        actor,
        now,
        after={"event_id": event_id},
    )
    return delivery_id


async def _delivery_of(conn: AsyncConnection, event_id: int, endpoint_id: int) -> int:
    delivery_id = await conn.scalar(
        select(deliveries_t.c.id).where(
            deliveries_t.c.event_id == event_id, deliveries_t.c.endpoint_id == endpoint_id
        )
    )
    assert delivery_id is not None
    return int(delivery_id)
