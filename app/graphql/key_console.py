"""The console's key actions that change no key: reveal a secret again, test a key.

Reveal is for owners only and is audited (keys.service.reveal_key); it works only when
the server keeps secrets encrypted (``CREDITGRAPH_KEY_ENCRYPTION_KEY``).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.auth import Role
from app.graphql.context import Info
from app.graphql.key_mutations import managed_key
from app.graphql.keys import ApiKey, api_key_node
from app.graphql.payloads import Refused, UserError, caller, refused
from app.graphql.payloads import UserErrorCode as Code
from app.keys import service

_KEY_ID = "The key's global ID; another organization's or a malformed one is NOT_FOUND."


@strawberry.input(description="The key whose secret to show again.")
class RevealApiKeyInput:
    id: strawberry.ID = strawberry.field(description=_KEY_ID)


@strawberry.type(description="The key and its secret.")
class RevealApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(
        default=None, description="The key; null when there are userErrors."
    )
    secret: str | None = strawberry.field(
        default=None, description="The full secret; null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was revealed; empty on success."
    )


@strawberry.type
class KeyConsoleMutations:
    @strawberry.mutation(
        description="Show a key's secret again (owners only; recorded in the audit log). "
        "REVEAL_UNAVAILABLE when the server keeps no encrypted secrets."
    )
    async def reveal_api_key(
        self,
        info: Info,
        input: Annotated[RevealApiKeyInput, strawberry.argument(description="The key.")],
    ) -> RevealApiKeyPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, Role.OWNER)
            async with runtime.db.write(principal.organization_id) as conn:
                row = await managed_key(conn, principal, input.id)
                secret = await service.reveal_key(
                    conn,
                    runtime.vault,
                    organization_id=principal.organization_id,
                    key_id=row.id,
                    actor=principal.actor,
                    now=runtime.clock.now(),
                )
            if secret is None:
                raise refused(
                    Code.REVEAL_UNAVAILABLE,
                    "this key's secret is not kept: no key encryption key is configured, "
                    "or the key predates it; rotate the key for a new secret",
                    "id",
                )
        except Refused as refusal:
            return RevealApiKeyPayload(user_errors=refusal.errors)
        return RevealApiKeyPayload(api_key=await api_key_node(info, row.id), secret=secret)
