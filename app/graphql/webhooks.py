"""Webhook endpoints and their deliveries: the reads, the five mutations, their types.

Owners and admins only, reads included: endpoints' URLs and the events' bodies are the
organization's integration, not its dashboard. The rules live in ``app.webhooks``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.engine import Connection as DBConnection
from strawberry.scalars import JSON

from app.auth import Principal
from app.db import Prebuilt, in_list
from app.graphql.context import ADMINS, Info
from app.graphql.enums import DeliveryStatus, EventType
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused
from app.graphql.relay import After, Connection, First, Node, page_connection
from app.ids import from_global_id, to_global_id
from app.pages import Keyset, equal
from app.webhooks import endpoints as service
from app.webhooks.tables import attempts_t, deliveries_t, endpoints_t, events_t
from app.webhooks.urls import UnsafeUrl, check_url

MAX_DESCRIPTION = 200


@strawberry.type(description="One POST of a delivery, and what came of it.")
class WebhookDeliveryAttempt:
    attempt: int = strawberry.field(description="1 for the first attempt, then 2, 3, ...")
    status_code: int | None = strawberry.field(
        description="The endpoint's HTTP status; null when none came (refused, timed out)."
    )
    error: str | None = strawberry.field(
        description='Why it failed ("HTTP 500", a timeout, a refused address); null on 2xx.'
    )
    at: datetime = strawberry.field(description="When the attempt ended (UTC).")


@strawberry.type(description="An event as it was sent: every delivery of it sends this body.")
class WebhookEvent(Node):
    type: str = strawberry.field(
        description="The body's type: a WebhookEventType's value (\"top_up.succeeded\"), "
        'or "webhook.test".'
    )
    created_at: datetime = strawberry.field(description="When the change it reports committed.")
    payload: JSON = strawberry.field(
        description="The JSON body POSTed: id, type, createdAt, organizationId and data."
    )

    @classmethod
    def of(cls, row: Any) -> WebhookEvent:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEvent", row.id)),
            type=row.type,
            created_at=row.created_at,
            payload=JSON(json.loads(row.body)),
        )


@strawberry.type(description="One event sent to one endpoint, with every attempt.")
class WebhookDelivery(Node):
    event: WebhookEvent = strawberry.field(description="What is sent.")
    status: DeliveryStatus = strawberry.field(description="Where it stands.")
    attempt_count: int = strawberry.field(description="Attempts made so far.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due (UTC); null once delivered or failed."
    )
    attempts: list[WebhookDeliveryAttempt] = strawberry.field(
        description="Every attempt, first first."
    )
    created_at: datetime = strawberry.field(description="When it was queued (UTC).")


_DELIVERIES = Keyset(
    lambda: select(deliveries_t),
    (deliveries_t.c.created_at, deliveries_t.c.id),
    {
        "organization_id": equal(deliveries_t.c.organization_id),
        "endpoint_id": equal(deliveries_t.c.endpoint_id),
    },
)
_events_by_id = Prebuilt(
    lambda dialect, _lock: select(events_t).where(in_list(events_t.c.id, "ids", dialect))
)
_attempts = Prebuilt(
    lambda dialect, _lock: (
        select(attempts_t)
        .where(in_list(attempts_t.c.delivery_id, "ids", dialect))
        .order_by(attempts_t.c.id)
    )
)


def deliveries_of(conn: DBConnection, rows: list[Any]) -> list[WebhookDelivery]:
    """The page's deliveries with their events and attempts, in two queries."""
    if not rows:
        return []
    event_ids = list({row.event_id for row in rows})
    events = {r.id: r for r in _events_by_id.rows(conn, {"ids": event_ids})}
    attempts: dict[int, list[WebhookDeliveryAttempt]] = {row.id: [] for row in rows}
    for a in _attempts.rows(conn, {"ids": list(attempts)}):
        attempts[a.delivery_id].append(
            WebhookDeliveryAttempt(
                attempt=a.attempt, status_code=a.status_code, error=a.error, at=a.created_at
            )
        )
    return [
        WebhookDelivery(
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            event=WebhookEvent.of(events[row.event_id]),
            status=DeliveryStatus(row.status),
            attempt_count=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
            attempts=attempts[row.id],
            created_at=row.created_at,
        )
        for row in rows
    ]


@strawberry.type(description="A URL the organization's events are POSTed to, signed.")
class WebhookEndpoint(Node):
    url: str = strawberry.field(description="Where events are POSTed.")
    description: str | None = strawberry.field(description="What it is for, for people.")
    events: list[EventType] = strawberry.field(description="The events it receives.")
    enabled: bool = strawberry.field(description="Disabled endpoints receive nothing.")
    created_at: datetime = strawberry.field(description="UTC.")
    _org_id: strawberry.Private[int]
    _row_id: strawberry.Private[int]

    @classmethod
    def of(cls, row: Any) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            url=row.url,
            description=row.description,
            events=[EventType(e) for e in row.events],
            enabled=row.enabled,
            created_at=row.created_at,
            _org_id=row.organization_id,
            _row_id=row.id,
        )

    @strawberry.field(description="What was sent to it, newest first, with every attempt.")
    async def deliveries(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[WebhookDelivery]:
        values = {"organization_id": self._org_id, "endpoint_id": self._row_id}
        return await page_connection(info, _DELIVERIES, values, first, after, deliveries_of)


def _live(organization_id: int) -> Any:
    return select(endpoints_t).where(
        endpoints_t.c.organization_id == organization_id, endpoints_t.c.deleted_at.is_(None)
    )


async def webhook_endpoints(info: Info, organization_id: int) -> list[WebhookEndpoint]:
    info.context.caller(*ADMINS)
    statement = _live(organization_id).order_by(endpoints_t.c.id)
    rows = await info.context.runtime.db.read(lambda conn: conn.execute(statement).all())
    return [WebhookEndpoint.of(row) for row in rows]


def endpoint_loader(
    conn: DBConnection, caller: Principal, row_id: int, _now: datetime
) -> Node | None:
    if caller.role not in ADMINS:
        return None
    row = conn.execute(_live(caller.organization_id).where(endpoints_t.c.id == row_id)).first()
    return None if row is None else WebhookEndpoint.of(row)


def delivery_loader(
    conn: DBConnection, caller: Principal, row_id: int, _now: datetime
) -> Node | None:
    if caller.role not in ADMINS:
        return None
    row = conn.execute(
        select(deliveries_t).where(
            deliveries_t.c.id == row_id,
            deliveries_t.c.organization_id == caller.organization_id,
            deliveries_t.c.endpoint_id.is_not(None),  # alert rules' are not endpoints'
        )
    ).first()
    return None if row is None else deliveries_of(conn, [row])[0]


def event_loader(conn: DBConnection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    if caller.role not in ADMINS:
        return None
    row = conn.execute(
        select(events_t).where(
            events_t.c.id == row_id, events_t.c.organization_id == caller.organization_id
        )
    ).first()
    return None if row is None else WebhookEvent.of(row)


# -- mutations ---------------------------------------------------------------------------

URL_RULES = (
    "http(s); loopback, private, link-local and cloud metadata addresses are INVALID_INPUT "
    "(as alert rules' webhook URLs)."
)


def _url(info: Info, url: str) -> str:
    try:
        check_url(url, allow_private=info.context.runtime.settings.alert_webhook_allow_private)
    except UnsafeUrl as exc:
        raise refused(UserErrorCode.INVALID_INPUT, f"url: {exc}", "url") from None
    return url


def _events(events: list[EventType]) -> list[str]:
    if not events:
        raise refused(UserErrorCode.INVALID_INPUT, "subscribe to at least one event", "events")
    return list(dict.fromkeys(e.value for e in events))


def _description(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise refused(
            UserErrorCode.INVALID_INPUT,
            f"at most {MAX_DESCRIPTION} characters",
            "description",
        )
    return description


def _id(global_id: str, type_name: str, field: str) -> int:
    row_id = from_global_id(global_id, type_name)
    if row_id is None:
        raise refused(UserErrorCode.NOT_FOUND, f"no such {type_name}", field)
    return row_id


def _not_found(type_name: str, field: str) -> Refused:
    return refused(UserErrorCode.NOT_FOUND, f"no such {type_name}", field)


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description=f"Where to POST events: {URL_RULES}")
    events: list[EventType] = strawberry.field(description="What to send it: at least one.")
    description: str | None = strawberry.field(
        default=None, description="What it is for (at most 200 characters)."
    )


@strawberry.type(description="The endpoint created, and its signing secret.")
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    secret: str | None = strawberry.field(
        default=None,
        description="Signs every body sent to it (Creditgraph-Signature, HMAC-SHA256, see "
        "the README). Shown only here, once: store it now.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="Changes to an endpoint; omitted fields stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's global ID.")
    url: str | None = strawberry.field(default=None, description=f"A new URL: {URL_RULES}")
    events: list[EventType] | None = strawberry.field(
        default=None, description="The events it receives from now on: at least one."
    )
    description: str | None = strawberry.field(default=None, description="A new description.")
    enabled: bool | None = strawberry.field(
        default=None, description="False: send it nothing (pending deliveries end); true: resume."
    )


@strawberry.type(description="The endpoint as it is now.")
class UpdateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="The endpoint to delete.")
class DeleteWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's global ID.")


@strawberry.type(description="Which endpoint was deleted.")
class DeleteWebhookEndpointPayload:
    deleted_webhook_endpoint_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="The endpoint to send a test event to.")
class SendTestWebhookEventInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint's global ID.")


@strawberry.input(description="The event to send again, and where.")
class RedeliverWebhookEventInput:
    event_id: strawberry.ID = strawberry.field(
        description="The WebhookEvent's global ID (WebhookDelivery.event.id)."
    )
    endpoint_id: strawberry.ID = strawberry.field(
        description="The endpoint it was sent to, and is sent to again."
    )


@strawberry.type(description="The delivery queued; its attempts follow in the background.")
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        default=None,
        description="The new delivery (PENDING when this answers; see the endpoint's "
        "deliveries for its attempts). Null when there are userErrors.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was sent; empty on success."
    )


async def _delivery(info: Info, delivery_id: int) -> WebhookDelivery:
    def read(conn: DBConnection) -> WebhookDelivery:
        row = conn.execute(select(deliveries_t).where(deliveries_t.c.id == delivery_id)).one()
        return deliveries_of(conn, [row])[0]

    return await info.context.runtime.db.read(read)


def _endpoint_refusal(exc: Exception, field: str) -> Refused:
    if isinstance(exc, service.UnknownEndpoint):
        return _not_found("WebhookEndpoint", field)
    if isinstance(exc, service.UnknownEvent):
        return refused(UserErrorCode.NOT_FOUND, str(exc), "eventId")
    if isinstance(exc, service.TooManyEndpoints):
        return refused(UserErrorCode.INVALID_INPUT, str(exc))
    return refused(UserErrorCode.INVALID_INPUT, str(exc), field)


_REFUSALS = (
    service.UnknownEndpoint,
    service.UnknownEvent,
    service.TooManyEndpoints,
    service.EndpointDisabled,
)


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Subscribe a URL to events (owners and admins; audited). The answer "
        "carries its signing secret, once."
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            CreateWebhookEndpointInput, strawberry.argument(description="The endpoint.")
        ],
    ) -> CreateWebhookEndpointPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            url, events = _url(info, input.url), _events(input.events)
            description = _description(input.description)
            async with runtime.db.write(principal.organization_id) as conn:
                try:
                    row, secret = await service.create_endpoint(
                        conn,
                        runtime.webhooks.vault,
                        organization_id=principal.organization_id,
                        url=url,
                        events=events,
                        description=description,
                        actor=principal.actor,
                        now=runtime.clock.now(),
                    )
                except _REFUSALS as exc:
                    raise _endpoint_refusal(exc, "url") from None
        except Refused as refusal:
            return CreateWebhookEndpointPayload(user_errors=refusal.errors)
        return CreateWebhookEndpointPayload(webhook_endpoint=WebhookEndpoint.of(row), secret=secret)

    @strawberry.mutation(
        description="Change an endpoint's URL, events, description, or enable or disable it "
        "(owners and admins; audited)."
    )
    async def update_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            UpdateWebhookEndpointInput, strawberry.argument(description="The changes.")
        ],
    ) -> UpdateWebhookEndpointPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            endpoint_id = _id(input.id, "WebhookEndpoint", "id")
            changes: dict[str, Any] = {}
            if input.url is not None:
                changes["url"] = _url(info, input.url)
            if input.events is not None:
                changes["events"] = _events(input.events)
            if input.description is not None:
                changes["description"] = _description(input.description)
            if input.enabled is not None:
                changes["enabled"] = input.enabled
            async with runtime.db.write(principal.organization_id) as conn:
                try:
                    row = await service.update_endpoint(
                        conn,
                        organization_id=principal.organization_id,
                        endpoint_id=endpoint_id,
                        changes=changes,
                        actor=principal.actor,
                        now=runtime.clock.now(),
                    )
                except _REFUSALS as exc:
                    raise _endpoint_refusal(exc, "id") from None
        except Refused as refusal:
            return UpdateWebhookEndpointPayload(user_errors=refusal.errors)
        return UpdateWebhookEndpointPayload(webhook_endpoint=WebhookEndpoint.of(row))

    @strawberry.mutation(
        description="Delete an endpoint (owners and admins; audited): nothing more is sent "
        "to it, pending deliveries end, past ones stay."
    )
    async def delete_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            DeleteWebhookEndpointInput, strawberry.argument(description="Which endpoint.")
        ],
    ) -> DeleteWebhookEndpointPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            endpoint_id = _id(input.id, "WebhookEndpoint", "id")
            async with runtime.db.write(principal.organization_id) as conn:
                try:
                    await service.delete_endpoint(
                        conn,
                        organization_id=principal.organization_id,
                        endpoint_id=endpoint_id,
                        actor=principal.actor,
                        now=runtime.clock.now(),
                    )
                except _REFUSALS as exc:
                    raise _endpoint_refusal(exc, "id") from None
        except Refused as refusal:
            return DeleteWebhookEndpointPayload(user_errors=refusal.errors)
        return DeleteWebhookEndpointPayload(deleted_webhook_endpoint_id=input.id)

    @strawberry.mutation(
        description='Send the endpoint a "webhook.test" event, signed and retried like any '
        "other, whatever it subscribes to (owners and admins; audited). A disabled endpoint "
        "is INVALID_INPUT."
    )
    async def send_test_webhook_event(
        self,
        info: Info,
        input: Annotated[
            SendTestWebhookEventInput, strawberry.argument(description="Which endpoint.")
        ],
    ) -> WebhookDeliveryPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            endpoint_id = _id(input.endpoint_id, "WebhookEndpoint", "endpointId")
            async with runtime.db.write(principal.organization_id) as conn:
                try:
                    delivery_id = await service.send_test(
                        conn,
                        organization_id=principal.organization_id,
                        endpoint_id=endpoint_id,
                        actor=principal.actor,
                        now=runtime.clock.now(),
                    )
                except _REFUSALS as exc:
                    raise _endpoint_refusal(exc, "endpointId") from None
        except Refused as refusal:
            return WebhookDeliveryPayload(user_errors=refusal.errors)
        return WebhookDeliveryPayload(delivery=await _delivery(info, delivery_id))

    @strawberry.mutation(
        description="Send an event again to an endpoint it was sent to, as a new delivery "
        "with the same body and event ID, so receivers can tell it is the same event "
        "(owners and admins; audited). A disabled endpoint is INVALID_INPUT."
    )
    async def redeliver_webhook_event(
        self,
        info: Info,
        input: Annotated[
            RedeliverWebhookEventInput, strawberry.argument(description="What and where.")
        ],
    ) -> WebhookDeliveryPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            event_id = _id(input.event_id, "WebhookEvent", "eventId")
            endpoint_id = _id(input.endpoint_id, "WebhookEndpoint", "endpointId")
            async with runtime.db.write(principal.organization_id) as conn:
                try:
                    delivery_id = await service.redeliver(
                        conn,
                        organization_id=principal.organization_id,
                        event_id=event_id,
                        endpoint_id=endpoint_id,
                        actor=principal.actor,
                        now=runtime.clock.now(),
                    )
                except _REFUSALS as exc:
                    raise _endpoint_refusal(exc, "endpointId") from None
        except Refused as refusal:
            return WebhookDeliveryPayload(user_errors=refusal.errors)
        return WebhookDeliveryPayload(delivery=await _delivery(info, delivery_id))
