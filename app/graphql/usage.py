"""Per-call usage: the log with its filters, and ``recordUsage`` for the gateway."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.engine import Connection as DBConnection
from strawberry.utils.str_converters import to_camel_case

from app.auth import Principal, Role
from app.fields import FieldError
from app.graphql.context import Info
from app.graphql.enums import UsageStatus
from app.graphql.errors import Code, error
from app.graphql.keys import ApiKey, keys_by_id
from app.graphql.money import Amount
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused
from app.graphql.relay import Connection, Node, page_connection, require_zones
from app.graphql.scalars import Decimal
from app.ids import from_global_id, to_global_id
from app.usage.ingest import UsageJob, UsageOutcome
from app.usage.reads import USAGE_LOG, UsageFilter, usage_count, usage_record, usage_values
from app.usage.wire import parse_event


@strawberry.type(description="A tag the gateway sent with a call (8bit-ai's agent, conversation).")
class Tag:
    key: str = strawberry.field(description='Such as "agent" or "conversation".')
    value: str = strawberry.field(description="As the gateway sent it.")


@strawberry.type(description="One billed (or free, failed) call, as the gateway reported it.")
class UsageRecord(Node):
    request_id: str = strawberry.field(description="The gateway's idempotency key.")
    model: str = strawberry.field(description="The model called, as the gateway named it.")
    action: str = strawberry.field(description='The billed action, such as "llm_inference".')
    status: UsageStatus = strawberry.field(description="How the call ended.")
    prompt_tokens: int = strawberry.field(description="Input tokens; 0 when not priced by token.")
    completion_tokens: int = strawberry.field(
        description="Output tokens; 0 when not priced by token."
    )
    units: str = strawberry.field(
        description=(
            "Seconds, minutes or a count, by the model's price, as a decimal string; "
            '"0" when the price is per token.'
        )
    )
    cost: Amount = strawberry.field(description="What the call was charged; zero when it failed.")
    tags: list[Tag] = strawberry.field(description="Sorted by key; empty when none were sent.")
    occurred_at: datetime = strawberry.field(
        description="When the call happened (UTC), as reported."
    )
    created_at: datetime = strawberry.field(
        description="When it was billed (UTC): the time windows and the monthly cap count it at."
    )
    api_key: ApiKey | None = strawberry.field(description="The key the call was made with.")

    @classmethod
    def of(cls, row: Any, key: ApiKey | None) -> UsageRecord:
        return cls(
            id=strawberry.ID(to_global_id("UsageRecord", row.id)),
            request_id=row.request_id,
            model=row.model,
            action=row.action,
            status=UsageStatus(row.status),
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            units=row.units,
            cost=Amount.of(row.cost),
            tags=[Tag(key=k, value=v) for k, v in sorted(row.tags.items())],
            occurred_at=row.occurred_at,
            created_at=row.created_at,
            api_key=key,
        )


def usage_records(
    conn: DBConnection, principal: Principal, rows: list[Any], now: datetime
) -> list[UsageRecord]:
    """``rows`` of the usage log as records, with their keys read in the same transaction
    (their windows only if the query asks for them)."""
    ids = list({row.api_key_id for row in rows})
    keys = {key.id: key for key in keys_by_id(conn, principal, ids, now, windows=False)}
    return [
        UsageRecord.of(row, keys.get(strawberry.ID(to_global_id("ApiKey", row.api_key_id))))
        for row in rows
    ]


@strawberry.input(
    name="UsageFilter",
    description="Narrows the usage log; every field is optional and they combine.",
)
class UsageFilterInput:
    api_key_id: strawberry.ID | None = strawberry.field(
        default=None, description="One key's calls."
    )
    model: str | None = strawberry.field(default=None, description="Calls to this model.")
    action: str | None = strawberry.field(default=None, description="Calls of this action.")
    request_id: str | None = strawberry.field(
        default=None, description="The one call with this request id."
    )
    since: datetime | None = strawberry.field(default=None, description="Billed at or after (UTC).")
    until: datetime | None = strawberry.field(
        default=None, description="Billed before (UTC), exclusive."
    )


async def usage_page(
    info: Info,
    organization_id: int,
    f: UsageFilterInput | None,
    first: int,
    after: str | None,
) -> Connection[UsageRecord]:
    principal = info.context.caller()
    f = f or UsageFilterInput()
    key_id = None
    if f.api_key_id is not None:
        key_id = from_global_id(f.api_key_id, "ApiKey")
        if key_id is None:
            raise error(Code.BAD_USER_INPUT, "filter.apiKeyId: not an API key id")
    if principal.api_key_id is not None:
        # An API key sees only its own calls: another key's id matches nothing.
        key_id = principal.api_key_id if key_id in (None, principal.api_key_id) else -1
    require_zones(since=f.since, until=f.until)
    wanted = UsageFilter(key_id, f.model, f.action, f.request_id, f.since, f.until)
    now = info.context.runtime.clock.now()
    return await page_connection(
        info,
        USAGE_LOG,
        usage_values(organization_id, wanted),
        first,
        after,
        lambda conn, rows: usage_records(conn, principal, rows, now),
        lambda conn: usage_count(conn, organization_id, wanted),
    )


@strawberry.input(description="A tag to keep with the call, such as agent or conversation.")
class TagInput:
    key: str = strawberry.field(description="Up to 64 characters.")
    value: str = strawberry.field(description="Up to 200 characters.")


@strawberry.input(description="One completed or failed call, as the gateway saw it.")
class RecordUsageInput:
    request_id: str = strawberry.field(
        description="Idempotency key: billed once; a replay returns the first result."
    )
    api_key_id: strawberry.ID = strawberry.field(description="The key the call was made with.")
    model: str = strawberry.field(description="A model of the price book.")
    action: str | None = strawberry.field(
        default=None, description="The billed action; null: the model's default action."
    )
    prompt_tokens: int = strawberry.field(default=0, description="Input tokens used.")
    completion_tokens: int = strawberry.field(default=0, description="Output tokens used.")
    units: Decimal = strawberry.field(
        default=Decimal("0"),
        description='Seconds, minutes or a count, for models priced so; "0" is one request.',
    )
    status: UsageStatus = strawberry.field(
        default=UsageStatus.SUCCEEDED, description="A failed call is recorded and not billed."
    )
    provider_cost_usd: Decimal | None = strawberry.field(
        default=None, description="What the provider charged, for pass-through models (USD)."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When the call happened (with a time zone); default now."
    )
    tags: list[TagInput] | None = strawberry.field(default=None, description="At most 20.")


@strawberry.type(description="The record of the call, or why it was not recorded.")
class RecordUsagePayload:
    usage: UsageRecord | None = strawberry.field(description="Null when there are userErrors.")
    duplicate: bool = strawberry.field(
        description="True when this request id was already recorded: nothing was billed again."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was recorded; empty on success."
    )


# The usage job's rejection codes, as userErrors: (code, input field).
_REJECTIONS: dict[str, tuple[UserErrorCode, str | None]] = {
    "unknown_api_key": (UserErrorCode.NOT_FOUND, "apiKeyId"),
    "unknown_model": (UserErrorCode.INVALID_INPUT, "model"),
}


def _wire(data: RecordUsageInput) -> dict[str, Any]:
    """The input in the REST event's shape: one parser checks both (``usage.wire``)."""
    tags = None
    if data.tags is not None:
        tags = {tag.key: tag.value for tag in data.tags}
        if len(tags) != len(data.tags):
            raise refused(UserErrorCode.INVALID_INPUT, "tags: keys must differ", "tags")
    return {
        "request_id": data.request_id,
        "api_key_id": data.api_key_id,
        "model": data.model,
        "action": data.action,
        "prompt_tokens": data.prompt_tokens,
        "completion_tokens": data.completion_tokens,
        "units": data.units,
        "status": data.status.value,
        "provider_cost_usd": data.provider_cost_usd,
        "occurred_at": None if data.occurred_at is None else data.occurred_at.isoformat(),
        "tags": tags,
    }


@strawberry.type
class UsageMutations:
    @strawberry.mutation(
        description="Bill one call (the gateway's service role); the same rules as "
        "POST /api/v1/usage. Idempotent by requestId."
    )
    async def record_usage(
        self,
        info: Info,
        input: Annotated[RecordUsageInput, strawberry.argument(description="The call.")],
    ) -> RecordUsagePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, Role.SERVICE)
            try:
                event = parse_event(_wire(input))
            except FieldError as exc:
                # The wire parser's messages start with the REST field's name.
                name = re.match(r"[a-z_]*", str(exc))
                field = to_camel_case(name.group()) if name and name.group() else None
                raise refused(UserErrorCode.INVALID_INPUT, str(exc), field) from None
            job = UsageJob(principal.organization_id, event, runtime.prices)
            outcome: UsageOutcome = await runtime.writer.run(job)
            if outcome.outcome == "rejected":
                code, at = _REJECTIONS.get(
                    outcome.error_code or "", (UserErrorCode.INVALID_INPUT, None)
                )
                raise refused(code, outcome.error_message or "rejected", at)
        except Refused as exc:
            return RecordUsagePayload(usage=None, duplicate=False, user_errors=exc.errors)
        now = runtime.clock.now()

        def record(conn: DBConnection) -> UsageRecord:
            row = usage_record(conn, principal.organization_id, input.request_id)
            return usage_records(conn, principal, [row], now)[0]

        return RecordUsagePayload(
            usage=await runtime.db.read(record),
            duplicate=outcome.outcome == "duplicate",
            user_errors=[],
        )
