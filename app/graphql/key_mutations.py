"""Mutations on API keys: create, change caps, rotate, revoke.

Owners and admins manage every key of the organization and may create org-owned ones
(no owner); members create keys (owned by them) and manage only those. Viewers, the
service role and API keys get a userError FORBIDDEN. Each change is one writer
transaction with its audit record (keys.service).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import Principal
from app.graphql.context import ADMINS, WRITERS, Info
from app.graphql.keys import ApiKey, api_key_node
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused, usd_amounts
from app.graphql.scalars import Decimal
from app.ids import from_global_id
from app.keys import service
from app.keys.tables import KeyStatus
from app.ledger.state import key_state

MAX_NAME = 200  # the column's length
MAX_EXPIRY_DAYS = 3650

_CAP = "USD, more than 0, at most 6 decimals; "
_QUOTA = (
    "The most the key may ever spend (within the wallet), in USD, at most 6 decimals; 0: no quota; "
)
_5H = "The most the key may spend in any 5 hours (rolling), in " + _CAP
_1D = "The most the key may spend in any 24 hours (rolling), in " + _CAP
_7D = "The most the key may spend in any 7 days (rolling), in " + _CAP
_NEW = "null or omitted: no limit."
_CHANGE = "null removes the limit; omitted keeps it."
_KEY_ID = "The key's global ID; another organization's or a malformed one is NOT_FOUND."

# Cap input attribute -> (the field's name in the schema, the key column, whether 0 is
# accepted as "no cap"). The seeds' quota: "0 = unlimited (within the wallet)". A window
# of 0 would read as "nothing may be spent", the opposite of no cap, so it is refused.
_CAPS = {
    "quota_usd": ("quotaUsd", "quota", True),
    "rate_limit_5h_usd": ("rateLimit5hUsd", "limit_5h", False),
    "rate_limit_1d_usd": ("rateLimit1dUsd", "limit_1d", False),
    "rate_limit_7d_usd": ("rateLimit7dUsd", "limit_7d", False),
}


@strawberry.input(description="A new API key, owned by the caller or by the organization.")
class CreateApiKeyInput:
    name: str = strawberry.field(description=f"A label for people: 1 to {MAX_NAME} characters.")
    group: str = strawberry.field(
        default="default",
        description='Routing group of the price book: which models the key may call ("default" '
        "serves all); an unknown group is INVALID_INPUT.",
    )
    quota_usd: Decimal | None = strawberry.field(default=None, description=_QUOTA + _NEW)
    rate_limit_5h_usd: Decimal | None = strawberry.field(default=None, description=_5H + _NEW)
    rate_limit_1d_usd: Decimal | None = strawberry.field(default=None, description=_1D + _NEW)
    rate_limit_7d_usd: Decimal | None = strawberry.field(default=None, description=_7D + _NEW)
    expires_in_days: int | None = strawberry.field(
        default=None,
        description=f"Whole days from now until the key stops working, 1 to {MAX_EXPIRY_DAYS}; "
        "null: never expires.",
    )
    org_owned: bool = strawberry.field(
        default=False,
        description="true: the organization owns the key (owner null; its responses carry "
        "X-Org-Quota-Remaining-Credits), and only owners and admins manage it. Owners and "
        "admins only: a member asking is FORBIDDEN.",
    )


@strawberry.input(
    description="New caps for a key: per field, a value sets, null removes, omitted keeps."
)
class UpdateApiKeyCapsInput:
    id: strawberry.ID = strawberry.field(description=_KEY_ID)
    quota_usd: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description=_QUOTA + _CHANGE
    )
    rate_limit_5h_usd: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description=_5H + _CHANGE
    )
    rate_limit_1d_usd: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description=_1D + _CHANGE
    )
    rate_limit_7d_usd: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description=_7D + _CHANGE
    )


@strawberry.input(description="The key to give a new secret.")
class RotateApiKeyInput:
    id: strawberry.ID = strawberry.field(description=_KEY_ID)


@strawberry.input(description="The key to revoke.")
class RevokeApiKeyInput:
    id: strawberry.ID = strawberry.field(description=_KEY_ID)


_API_KEY = "The key as it is now; null when there are userErrors."
_SECRET = (
    'The full secret ("<prefix>-..."), shown this once and never again: store it now. '
    "Null when there are userErrors."
)
_ERRORS = "Why nothing was changed; empty on success."


@strawberry.type(description="The new key and its secret.")
class CreateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description=_API_KEY)
    secret: str | None = strawberry.field(default=None, description=_SECRET)
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The key with its new caps.")
class UpdateApiKeyCapsPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description=_API_KEY)
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The key and its new secret; the old secret no longer works.")
class RotateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description=_API_KEY)
    secret: str | None = strawberry.field(default=None, description=_SECRET)
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The revoked key.")
class RevokeApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description=_API_KEY)
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


def _caps(data: CreateApiKeyInput | UpdateApiKeyCapsInput) -> dict[str, int | None]:
    """The cap inputs given (not omitted), by key column, in credits (None: no cap); every
    bad one is reported. A zero is no cap where ``_CAPS`` accepts it, else refused."""
    amounts: dict[str, int | None] = {}
    errors: list[UserError] = []
    for allow_zero in (True, False):
        given = {
            field: getattr(data, attribute)
            for attribute, (field, _, zero_is_no_cap) in _CAPS.items()
            if zero_is_no_cap is allow_zero and getattr(data, attribute) is not strawberry.UNSET
        }
        try:
            amounts |= usd_amounts(given, allow_zero=allow_zero)
        except Refused as refusal:
            errors += refusal.errors
    if errors:
        raise Refused(*errors)
    return {
        column: amounts[field] or None for field, column, _ in _CAPS.values() if field in amounts
    }


def _new_key(info: Info, principal: Principal, data: CreateApiKeyInput) -> tuple[str, service.Caps]:
    """The trimmed name and the caps, or every problem of the input at once."""
    errors: list[UserError] = []

    def invalid(field: str, message: str) -> None:
        errors.append(UserError(field=field, message=message, code=UserErrorCode.INVALID_INPUT))

    name = data.name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        invalid("name", f"must be 1 to {MAX_NAME} characters")
    if data.group not in info.context.runtime.prices.groups:
        invalid("group", f"unknown routing group {data.group!r}")
    days = data.expires_in_days
    if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
        invalid("expiresInDays", f"must be from 1 to {MAX_EXPIRY_DAYS}")
    if data.org_owned and principal.role not in ADMINS:
        errors += refused(
            UserErrorCode.FORBIDDEN, "only owners and admins create org-owned keys", "orgOwned"
        ).errors
    caps: dict[str, int | None] = {}
    try:
        caps = _caps(data)
    except Refused as refusal:
        errors += refusal.errors
    if errors:
        raise Refused(*errors)
    return name, service.Caps(**caps)


async def managed_key(conn: AsyncConnection, principal: Principal, global_id: str) -> Any:
    """The key's row if the caller may manage it: in the caller's transaction, so the
    check and the change see the same row."""
    key_id, row = from_global_id(global_id, "ApiKey"), None
    if key_id is not None:
        with contextlib.suppress(service.UnknownKey):
            row = await service.get_key(conn, principal.organization_id, key_id)
    if row is None:
        raise refused(UserErrorCode.NOT_FOUND, "no such API key", "id")
    if principal.role not in ADMINS and row.owner != principal.subject:
        raise refused(UserErrorCode.FORBIDDEN, "members manage only the keys they own", "id")
    return row


@strawberry.type
class KeyMutations:
    @strawberry.mutation(
        description="Create an API key owned by the caller (owners, admins, members), or by "
        "the organization (orgOwned: owners and admins). Its secret is in this answer only."
    )
    async def create_api_key(
        self,
        info: Info,
        input: Annotated[CreateApiKeyInput, strawberry.argument(description="The new key.")],
    ) -> CreateApiKeyPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *WRITERS)
            name, caps = _new_key(info, principal, input)
        except Refused as refusal:
            return CreateApiKeyPayload(user_errors=refusal.errors)
        async with runtime.db.write(principal.organization_id) as conn:
            created = await service.create_key(
                conn,
                runtime.vault,
                organization_id=principal.organization_id,
                name=name,
                actor=principal.actor,
                now=runtime.clock.now(),
                group=input.group,
                owner=None if input.org_owned else principal.subject,
                caps=caps,
                expires_in_days=input.expires_in_days,
            )
        return CreateApiKeyPayload(
            api_key=await api_key_node(info, created.id), secret=created.secret
        )

    @strawberry.mutation(
        description="Set or remove a key's quota and window limits; spend so far is kept. "
        "A lower limit than already spent refuses new calls at once."
    )
    async def update_api_key_caps(
        self,
        info: Info,
        input: Annotated[
            UpdateApiKeyCapsInput, strawberry.argument(description="The key and its caps.")
        ],
    ) -> UpdateApiKeyCapsPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *WRITERS)
            changes = _caps(input)
            async with runtime.db.write(principal.organization_id) as conn:
                row = await managed_key(conn, principal, input.id)
                caps = {
                    column: changes.get(column, getattr(row, column))
                    for _, column, _ in _CAPS.values()
                }
                await service.set_caps(
                    conn,
                    organization_id=principal.organization_id,
                    key_id=row.id,
                    caps=service.Caps(**caps),
                    actor=principal.actor,
                    now=runtime.clock.now(),
                )
        except Refused as refusal:
            return UpdateApiKeyCapsPayload(user_errors=refusal.errors)
        return UpdateApiKeyCapsPayload(api_key=await api_key_node(info, row.id))

    @strawberry.mutation(
        description="Give an active key a new secret; the old one stops working at once. "
        "Caps and spend stay. A revoked or expired key is INVALID_INPUT."
    )
    async def rotate_api_key(
        self,
        info: Info,
        input: Annotated[RotateApiKeyInput, strawberry.argument(description="The key to rotate.")],
    ) -> RotateApiKeyPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *WRITERS)
            async with runtime.db.write(principal.organization_id) as conn:
                row = await managed_key(conn, principal, input.id)
                now = runtime.clock.now()
                status = key_state(row).status(now)
                if status != KeyStatus.ACTIVE:
                    raise refused(UserErrorCode.INVALID_INPUT, f"the API key is {status}", "id")
                rotated = await service.rotate_key(
                    conn,
                    runtime.vault,
                    organization_id=principal.organization_id,
                    key_id=row.id,
                    actor=principal.actor,
                    now=now,
                )
        except Refused as refusal:
            return RotateApiKeyPayload(user_errors=refusal.errors)
        return RotateApiKeyPayload(api_key=await api_key_node(info, row.id), secret=rotated.secret)

    @strawberry.mutation(
        description="Revoke a key for good: the gateway refuses it at once. Revoking a "
        "revoked key changes nothing and is not an error."
    )
    async def revoke_api_key(
        self,
        info: Info,
        input: Annotated[RevokeApiKeyInput, strawberry.argument(description="The key to revoke.")],
    ) -> RevokeApiKeyPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *WRITERS)
            async with runtime.db.write(principal.organization_id) as conn:
                row = await managed_key(conn, principal, input.id)
                await service.revoke_key(
                    conn,
                    organization_id=principal.organization_id,
                    key_id=row.id,
                    actor=principal.actor,
                    now=runtime.clock.now(),
                )
        except Refused as refusal:
            return RevokeApiKeyPayload(user_errors=refusal.errors)
        return RevokeApiKeyPayload(api_key=await api_key_node(info, row.id))
