"""Alert rules and the events they fired: reads, the four mutations, and their types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select, update
from sqlalchemy.engine import Connection as DBConnection

from app.alerts.measure import MICRO
from app.alerts.service import TooManyRules, UnknownRuleKey, rule_values
from app.alerts.tables import RuleState, alert_events_t, rules_t
from app.auth import Principal
from app.db import Prebuilt, in_list
from app.graphql.context import ADMINS, PEOPLE, Info
from app.graphql.enums import AlertKind
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused
from app.graphql.relay import Connection, Node, page_connection
from app.graphql.scalars import Decimal
from app.ids import parse_global_id, to_global_id
from app.money import MoneyError, format_usd, parse_usd
from app.pages import Keyset, equal
from app.webhooks.urls import UnsafeUrl, check_url

MAX_PERCENT = 1000 * MICRO


THRESHOLD_UNITS = (
    "A decimal string, at most 6 decimals: USD for BALANCE_BELOW and DAILY_SPEND_ABOVE, "
    'a percent (0 to 1000, "80" for 80%) for SPEND_PERCENT_OF_ALLOCATION and '
    "KEY_CAP_PERCENT; null for AUTO_RELOAD_FAILED."
)


def _decimal(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(format_usd(value))


@strawberry.type(
    description="A condition watched after every change to the organization's money; it "
    "fires once when it starts to hold and re-arms when it stops."
)
class AlertRule(Node):
    kind: AlertKind = strawberry.field(description="What the rule watches.")
    threshold: Decimal | None = strawberry.field(description=THRESHOLD_UNITS)
    api_key_id: strawberry.ID | None = strawberry.field(
        description="The key a KEY_CAP_PERCENT rule watches; null for the other kinds."
    )
    webhook_url: str | None = strawberry.field(
        description="Where fired events are POSTed, signed (see the README); null: none."
    )
    enabled: bool = strawberry.field(description="Disabled rules are not evaluated.")
    firing: bool = strawberry.field(
        description="True from when the rule fired until its condition stops holding."
    )
    created_at: datetime = strawberry.field(description="UTC.")

    @classmethod
    def of(cls, row: Any) -> AlertRule:
        return cls(
            id=strawberry.ID(to_global_id("AlertRule", row.id)),
            kind=AlertKind(row.kind),
            threshold=_decimal(row.threshold),
            api_key_id=None
            if row.api_key_id is None
            else strawberry.ID(to_global_id("ApiKey", row.api_key_id)),
            webhook_url=row.webhook_url,
            enabled=row.enabled,
            firing=row.state == RuleState.FIRING.value,
            created_at=row.created_at,
        )


@strawberry.type(description="A rule that fired: what was measured, and whether seen.")
class AlertEvent(Node):
    rule: AlertRule = strawberry.field(description="The rule (it may since have been deleted).")
    message: str = strawberry.field(description="What happened, for people.")
    value: Decimal | None = strawberry.field(
        description="What was measured, in the rule's threshold unit; null for AUTO_RELOAD_FAILED."
    )
    fired_at: datetime = strawberry.field(description="UTC.")
    acknowledged_at: datetime | None = strawberry.field(
        description="UTC, when someone acknowledged it; null: not yet."
    )

    @classmethod
    def of(cls, row: Any, rule: Any) -> AlertEvent:
        return cls(
            id=strawberry.ID(to_global_id("AlertEvent", row.id)),
            rule=AlertRule.of(rule),
            message=row.message,
            value=_decimal(row.value),
            fired_at=row.created_at,
            acknowledged_at=row.acknowledged_at,
        )


_EVENTS = Keyset(
    lambda: select(alert_events_t),
    (alert_events_t.c.created_at, alert_events_t.c.id),
    {"organization_id": equal(alert_events_t.c.organization_id)},
)
_rules = Prebuilt(
    lambda dialect, _lock: select(rules_t).where(in_list(rules_t.c.id, "ids", dialect))
)


def _rules_by_id(conn: DBConnection, ids: set[int]) -> dict[int, Any]:
    rows = _rules.rows(conn, {"ids": list(ids)}) if ids else []
    return {row.id: row for row in rows}


def event_node(conn: DBConnection, organization_id: int, event_id: int) -> AlertEvent | None:
    row = conn.execute(
        select(alert_events_t).where(
            alert_events_t.c.id == event_id, alert_events_t.c.organization_id == organization_id
        )
    ).first()
    if row is None:
        return None
    return AlertEvent.of(row, _rules_by_id(conn, {row.rule_id})[row.rule_id])


def rule_loader(conn: DBConnection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    row = conn.execute(
        select(rules_t).where(
            rules_t.c.id == row_id,
            rules_t.c.organization_id == caller.organization_id,
            rules_t.c.deleted_at.is_(None),
        )
    ).first()
    return None if row is None else AlertRule.of(row)


def event_loader(conn: DBConnection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    return event_node(conn, caller.organization_id, row_id)


async def alert_rules(info: Info, organization_id: int) -> list[AlertRule]:
    info.context.caller(*PEOPLE)  # webhook URLs are not for API keys or the gateway
    statement = (
        select(rules_t)
        .where(rules_t.c.organization_id == organization_id, rules_t.c.deleted_at.is_(None))
        .order_by(rules_t.c.id)
    )
    rows = await info.context.runtime.db.read(lambda conn: conn.execute(statement).all())
    return [AlertRule.of(row) for row in rows]


async def alert_events(
    info: Info, organization_id: int, first: int, after: str | None
) -> Connection[AlertEvent]:
    info.context.caller(*PEOPLE)

    def events(conn: DBConnection, rows: list[Any]) -> list[AlertEvent]:
        rules = _rules_by_id(conn, {row.rule_id for row in rows})
        return [AlertEvent.of(row, rules[row.rule_id]) for row in rows]

    values = {"organization_id": organization_id}
    return await page_connection(info, _EVENTS, values, first, after, events)


# -- mutations ---------------------------------------------------------------------------


def _threshold(kind: AlertKind, value: Decimal | None) -> int | None:
    if kind is AlertKind.AUTO_RELOAD_FAILED:
        if value is not None:
            raise refused(
                UserErrorCode.INVALID_INPUT, "AUTO_RELOAD_FAILED takes no threshold", "threshold"
            )
        return None
    if value is None:
        raise refused(UserErrorCode.INVALID_AMOUNT, "a threshold is required", "threshold")
    try:
        parsed = parse_usd(value)
    except MoneyError as exc:
        raise refused(UserErrorCode.INVALID_AMOUNT, str(exc), "threshold") from None
    if kind in (AlertKind.SPEND_PERCENT_OF_ALLOCATION, AlertKind.KEY_CAP_PERCENT) and not (
        0 < parsed <= MAX_PERCENT
    ):
        raise refused(
            UserErrorCode.INVALID_AMOUNT, "a percent from 0 (excluded) to 1000", "threshold"
        )
    return parsed


def _url(info: Info, url: str | None) -> str | None:
    if url is None:
        return None
    try:
        check_url(url, allow_private=info.context.runtime.settings.alert_webhook_allow_private)
    except UnsafeUrl as exc:
        raise refused(UserErrorCode.INVALID_INPUT, f"webhookUrl: {exc}", "webhookUrl") from None
    return url


def _id_of(global_id: str, type_name: str, field: str) -> int:
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] != type_name:
        raise refused(UserErrorCode.NOT_FOUND, f"no such {type_name}", field)
    return parsed[1]


@strawberry.input(description="A new alert rule.")
class CreateAlertRuleInput:
    kind: AlertKind = strawberry.field(description="What the rule watches.")
    threshold: Decimal | None = strawberry.field(default=None, description=THRESHOLD_UNITS)
    api_key_id: strawberry.ID | None = strawberry.field(
        default=None, description="The key to watch: required for KEY_CAP_PERCENT, else null."
    )
    webhook_url: str | None = strawberry.field(
        default=None,
        description="http(s) URL to POST fired events to; loopback, private, link-local "
        "and metadata addresses are INVALID_INPUT. Null: no webhook.",
    )


@strawberry.type(description="The rule created, and its webhook signing secret.")
class CreateAlertRulePayload:
    alert_rule: AlertRule | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    webhook_secret: str | None = strawberry.field(
        default=None,
        description="Signs this rule's webhook bodies (HMAC-SHA256, see the README). Shown "
        "only here, once: store it now.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="Changes to an alert rule; omitted fields stay as they are.")
class UpdateAlertRuleInput:
    id: strawberry.ID = strawberry.field(description="The rule's global ID.")
    enabled: bool | None = strawberry.field(default=None, description="Enable or disable.")
    threshold: Decimal | None = strawberry.field(default=None, description=THRESHOLD_UNITS)
    webhook_url: str | None = strawberry.field(
        default=None, description="A new webhook URL (validated as on creation)."
    )
    remove_webhook: bool = strawberry.field(
        default=False, description="True: deliver no more webhooks for this rule."
    )


@strawberry.type(description="The rule as it is now.")
class UpdateAlertRulePayload:
    alert_rule: AlertRule | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="The rule to delete.")
class DeleteAlertRuleInput:
    id: strawberry.ID = strawberry.field(description="The rule's global ID.")


@strawberry.type(description="Which rule was deleted.")
class DeleteAlertRulePayload:
    deleted_alert_rule_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="The alert event to acknowledge.")
class AcknowledgeAlertEventInput:
    id: strawberry.ID = strawberry.field(description="The event's global ID.")


@strawberry.type(description="The event, acknowledged.")
class AcknowledgeAlertEventPayload:
    alert_event: AlertEvent | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


def _live_rule(organization_id: int, rule_id: int) -> Any:
    return select(rules_t).where(
        rules_t.c.id == rule_id,
        rules_t.c.organization_id == organization_id,
        rules_t.c.deleted_at.is_(None),
    )


@strawberry.type
class AlertMutations:
    @strawberry.mutation(
        description="Add an alert rule (owners and admins). It is evaluated at once and "
        "after every later change to the organization's money."
    )
    async def create_alert_rule(
        self,
        info: Info,
        input: Annotated[CreateAlertRuleInput, strawberry.argument(description="The rule.")],
    ) -> CreateAlertRulePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            kind = input.kind
            threshold = _threshold(kind, input.threshold)
            url = _url(info, input.webhook_url)
            key_id = None
            if kind is AlertKind.KEY_CAP_PERCENT:
                if input.api_key_id is None:
                    raise refused(
                        UserErrorCode.INVALID_INPUT, "KEY_CAP_PERCENT needs apiKeyId", "apiKeyId"
                    )
                key_id = _id_of(input.api_key_id, "ApiKey", "apiKeyId")
            elif input.api_key_id is not None:
                raise refused(
                    UserErrorCode.INVALID_INPUT, "only KEY_CAP_PERCENT takes apiKeyId", "apiKeyId"
                )
        except Refused as refusal:
            return CreateAlertRulePayload(user_errors=refusal.errors)
        try:
            row, secret = await runtime.alerts.create_rule(
                principal.organization_id,
                kind,
                threshold,
                actor=principal.actor,
                api_key_id=key_id,
                webhook_url=url,
            )
        except UnknownRuleKey:
            error = UserError(
                field="apiKeyId", message="no such ApiKey", code=UserErrorCode.NOT_FOUND
            )
            return CreateAlertRulePayload(user_errors=[error])
        except TooManyRules as exc:
            error = UserError(field=None, message=str(exc), code=UserErrorCode.INVALID_INPUT)
            return CreateAlertRulePayload(user_errors=[error])
        return CreateAlertRulePayload(alert_rule=AlertRule.of(row), webhook_secret=secret)

    @strawberry.mutation(
        description="Enable or disable an alert rule, or change its threshold or webhook "
        "(owners and admins). A changed threshold is evaluated at once."
    )
    async def update_alert_rule(
        self,
        info: Info,
        input: Annotated[UpdateAlertRuleInput, strawberry.argument(description="The changes.")],
    ) -> UpdateAlertRulePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            rule_id = _id_of(input.id, "AlertRule", "id")
            url = _url(info, input.webhook_url)
        except Refused as refusal:
            return UpdateAlertRulePayload(user_errors=refusal.errors)
        org_id = principal.organization_id
        async with runtime.db.write(org_id) as conn:
            before = (await conn.execute(_live_rule(org_id, rule_id))).first()
            if before is None:
                error = UserError(
                    field="id", message="no such AlertRule", code=UserErrorCode.NOT_FOUND
                )
                return UpdateAlertRulePayload(user_errors=[error])
            values: dict[str, Any] = {}
            try:
                if input.threshold is not None:
                    values["threshold"] = _threshold(AlertKind(before.kind), input.threshold)
            except Refused as refusal:
                return UpdateAlertRulePayload(user_errors=refusal.errors)
            if input.enabled is not None:
                values["enabled"] = input.enabled
            if input.remove_webhook:
                values["webhook_url"] = None
            elif url is not None:
                values["webhook_url"] = url
            if "threshold" in values or values.get("enabled") is False:
                # Judged afresh: a new threshold already crossed fires once.
                values["state"] = RuleState.ARMED.value
            if values:
                await conn.execute(update(rules_t).where(rules_t.c.id == rule_id).values(**values))
            row = (await conn.execute(select(rules_t).where(rules_t.c.id == rule_id))).one()
            if values:
                await runtime.alerts.audit_rule(
                    conn,
                    rule_id,
                    org_id,
                    principal.actor,
                    "alert_rule.update",
                    before=rule_values(before),
                    after=rule_values(row),
                )
        runtime.alerts.changed({org_id})
        return UpdateAlertRulePayload(alert_rule=AlertRule.of(row))

    @strawberry.mutation(
        description="Delete an alert rule (owners and admins); its past events stay."
    )
    async def delete_alert_rule(
        self,
        info: Info,
        input: Annotated[DeleteAlertRuleInput, strawberry.argument(description="Which rule.")],
    ) -> DeleteAlertRulePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            rule_id = _id_of(input.id, "AlertRule", "id")
        except Refused as refusal:
            return DeleteAlertRulePayload(user_errors=refusal.errors)
        org_id = principal.organization_id
        async with runtime.db.write(org_id) as conn:
            before = (await conn.execute(_live_rule(org_id, rule_id))).first()
            if before is None:
                error = UserError(
                    field="id", message="no such AlertRule", code=UserErrorCode.NOT_FOUND
                )
                return DeleteAlertRulePayload(user_errors=[error])
            await conn.execute(
                update(rules_t)
                .where(rules_t.c.id == rule_id)
                .values(deleted_at=runtime.clock.now())
            )
            await runtime.alerts.audit_rule(
                conn,
                rule_id,
                org_id,
                principal.actor,
                "alert_rule.delete",
                before=rule_values(before),
            )
        return DeleteAlertRulePayload(deleted_alert_rule_id=input.id)

    @strawberry.mutation(
        description="Mark an alert event as seen (owners and admins); acknowledging again "
        "keeps the first time."
    )
    async def acknowledge_alert_event(
        self,
        info: Info,
        input: Annotated[
            AcknowledgeAlertEventInput, strawberry.argument(description="Which event.")
        ],
    ) -> AcknowledgeAlertEventPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            event_id = _id_of(input.id, "AlertEvent", "id")
        except Refused as refusal:
            return AcknowledgeAlertEventPayload(user_errors=refusal.errors)
        org_id, now = principal.organization_id, runtime.clock.now()
        async with runtime.db.write(org_id) as conn:
            await conn.execute(
                update(alert_events_t)
                .where(
                    alert_events_t.c.id == event_id,
                    alert_events_t.c.organization_id == org_id,
                    alert_events_t.c.acknowledged_at.is_(None),
                )
                .values(acknowledged_at=now, acknowledged_by=principal.actor)
            )
        node = await runtime.db.read(lambda conn: event_node(conn, org_id, event_id))
        if node is None:
            error = UserError(
                field="id", message="no such AlertEvent", code=UserErrorCode.NOT_FOUND
            )
            return AcknowledgeAlertEventPayload(user_errors=[error])
        return AcknowledgeAlertEventPayload(alert_event=node)
