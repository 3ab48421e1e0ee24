"""The audit log over GraphQL: ``Organization.auditEvents``, for owners and admins.

Other roles get a top-level FORBIDDEN error on the field, which is nullable so that the
rest of their query still answers; ``node(id:)`` gives them null for an AuditEvent, as
for any ID that is not theirs. ``before`` and ``after`` are JSON objects (the JSON
scalar): the changed values as the log stored them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.engine import Connection as DBConnection
from strawberry.scalars import JSON

from app.audit import AUDIT_LOG, audit_t
from app.auth import Principal
from app.graphql.context import ADMINS, Info
from app.graphql.errors import Code, error
from app.graphql.relay import Connection, Node, each, page_connection
from app.ids import parse_global_id, to_global_id

# The kinds of ``target`` ("api_key:12") and the GraphQL types whose IDs they are.
_TARGET_TYPES = {
    "api_key": "ApiKey",
    "organization": "Organization",
    "alert_rule": "AlertRule",
    "top_up": "BillingTransaction",  # a top-up or an auto-reload's charge
    "webhook_endpoint": "WebhookEndpoint",
}
_TARGET_KINDS = {type_name: kind for kind, type_name in _TARGET_TYPES.items()}

_VALUES = (
    "a JSON object of the changed fields: amounts in whole credits (JSON numbers), times "
    "ISO 8601 in UTC."
)


@strawberry.type(description="One change to keys, caps, plans, settings or money: who, when, what.")
class AuditEvent(Node):
    action: str = strawberry.field(
        description='What was done: "api_key.create", "api_key.caps", "api_key.rotate", '
        '"api_key.revoke", "api_key.reveal" (a secret was shown again), "organization.create", '
        '"organization.spend_cap", "wallet.adjust" (an operator\'s credit or debit), '
        '"wallet.grant" (an admin\'s grant: `amount`, `reason`, `expires_at`), "promo.redeem" '
        "(a promo code's credits: its `code` and `number`, the code's nth redemption), "
        '"plan.change" '
        "(a plan begun, a downgrade scheduled or canceled, a subscription ended: `plan` and "
        '`next_plan` codes, and `effective_at`), "top_up.create", "auto_reload.charge", '
        '"auto_scale.charge", "overage.charge" (a closed period\'s overage charged to the '
        'saved card), "top_up.succeeded", "top_up.failed", "top_up.refunded", '
        '"auto_reload.update", "auto_scale.update", "payment_method.default" (the card '
        'automatic charges use chosen), "payment_method.remove" (a saved card removed; '
        "`default`: whether it was that card), "
        '"alert_rule.create", "alert_rule.update", "alert_rule.delete", '
        '"webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.delete", '
        '"webhook_endpoint.test" (a test event sent), "webhook_endpoint.redeliver" (an '
        "event sent again: `event_id`)."
    )
    actor: str = strawberry.field(
        description='Who did it: the token\'s subject, "api_key:<id>", "cli" for the '
        'command line, "stripe" for Stripe\'s webhooks, "auto-reload", "auto-scale", '
        '"overage-billing", "reconcile" (a '
        'payment looked up at the provider), "system" (a downgrade taking effect at a '
        'renewal) or "fake" (the development payment provider).'
    )
    target: str = strawberry.field(
        description='What was changed, as "<kind>:<database id>": "api_key:12", '
        '"organization:3", "alert_rule:4", "top_up:5" (a BillingTransaction), '
        '"payment_method:pm_..." (a saved card, by the payment provider\'s ID), '
        '"webhook_endpoint:6".'
    )
    target_id: strawberry.ID | None = strawberry.field(
        description="The global ID of what was changed, for node(id:); null for a kind "
        "this API has no type for."
    )
    before: JSON | None = strawberry.field(
        description=f"The values before the change, {_VALUES} Null when nothing came before "
        "(a creation) or nothing was changed (a reveal)."
    )
    after: JSON | None = strawberry.field(
        description=f"The values after the change, {_VALUES} Null when nothing was "
        "changed (a reveal) or nothing is left (a deletion, a card removed)."
    )
    at: datetime = strawberry.field(description="When the change was made (UTC).")

    @classmethod
    def of(cls, row: Any) -> AuditEvent:
        kind, _, raw_id = row.target.partition(":")
        type_name = _TARGET_TYPES.get(kind)
        target_id = None
        if type_name is not None and raw_id.isdigit():
            target_id = strawberry.ID(to_global_id(type_name, int(raw_id)))
        return cls(
            id=strawberry.ID(to_global_id("AuditEvent", row.id)),
            action=row.action,
            actor=row.actor,
            target=row.target,
            target_id=target_id,
            before=None if row.before is None else JSON(row.before),
            after=None if row.after is None else JSON(row.after),
            at=row.created_at,
        )


@strawberry.input(
    name="AuditEventFilter",
    description="Narrows the audit log; every field is optional and they combine.",
)
class AuditEventFilterInput:
    action: str | None = strawberry.field(
        default=None, description='One action, such as "api_key.revoke".'
    )
    actor: str | None = strawberry.field(
        default=None, description="One actor, exactly as `actor` shows it."
    )
    target_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Changes to one object, by its global ID (an ApiKey, an AlertRule, a "
        "top-up's BillingTransaction, a WebhookEndpoint or the Organization); an ID of "
        "another type is BAD_USER_INPUT.",
    )


# The argument of ``Organization.auditEvents``.
AuditFilter = Annotated[
    AuditEventFilterInput | None,
    strawberry.argument(description="Only the events that match; null: every event."),
]


def _target(global_id: strawberry.ID) -> str:
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] not in _TARGET_KINDS:
        raise error(
            Code.BAD_USER_INPUT,
            "filter.targetId: not an API key, alert rule, billing transaction, webhook endpoint "
            "or organization ID",
        )
    return f"{_TARGET_KINDS[parsed[0]]}:{parsed[1]}"


async def audit_page(
    info: Info,
    organization_id: int,
    f: AuditEventFilterInput | None,
    first: int,
    after: str | None,
) -> Connection[AuditEvent]:
    """A page of the organization's audit log, newest first; owners and admins only."""
    info.context.caller(*ADMINS)
    f = f or AuditEventFilterInput()
    target = None if f.target_id is None else _target(f.target_id)
    values = {
        "organization_id": organization_id,
        "action": f.action,
        "actor": f.actor,
        "target": target,
    }
    return await page_connection(info, AUDIT_LOG, values, first, after, each(AuditEvent.of))


def audit_event_node(
    conn: DBConnection, caller: Principal, row_id: int, _now: datetime
) -> AuditEvent | None:
    """``node(id:)``: the event, if it is the caller's organization's and theirs to read."""
    if caller.role not in ADMINS:
        return None
    row = conn.execute(
        select(audit_t).where(
            audit_t.c.id == row_id, audit_t.c.organization_id == caller.organization_id
        )
    ).first()
    return None if row is None else AuditEvent.of(row)
