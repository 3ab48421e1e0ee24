"""The schema: root types, limits and caches. ``schema.graphql`` is exported from here."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from graphql.validation import ASTValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit
from strawberry.schema.config import StrawberryConfig

from app.graphql.alerts import AlertMutations
from app.graphql.auto_scale import AutoScaleMutations
from app.graphql.cards import PaymentMethodMutations
from app.graphql.context import Info
from app.graphql.errors import MaskFaults, RequestErrorCodes
from app.graphql.grants import GrantMutations
from app.graphql.key_console import KeyConsoleMutations
from app.graphql.key_mutations import KeyMutations
from app.graphql.key_test import KeyTestMutations
from app.graphql.limits import Limits
from app.graphql.nodes import resolve_node
from app.graphql.org import Viewer
from app.graphql.payments import (
    BonusLadder,
    PaymentMutations,
    TopUpQuote,
    bonus_ladder,
    top_up_quote,
)
from app.graphql.plans import Plan, PlanMutations, plans
from app.graphql.prepared import Admit, Documents
from app.graphql.relay import Node
from app.graphql.scalars import SCALARS, Decimal
from app.graphql.spend_cap import SpendCapMutations
from app.graphql.subscriptions import Subscription, WebSocketOnly
from app.graphql.usage import UsageMutations
from app.graphql.webhooks import WebhookMutations

# Dashboards' deepest contract operation nests 8 levels; a little room beyond that.
MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000
CACHE_SIZE = 256
# Built once, not per request: the validation cache is keyed by the rules too.
LIMIT_RULES: list[type[ASTValidationRule]] = [
    depth_limit(MAX_DEPTH, None),
    alias_limit(MAX_ALIASES),
]
# Queries that passed all of the above, for the view's fast path (``prepared.py``).
DOCUMENTS = Documents(CACHE_SIZE)


@strawberry.type(description="Reads; every one is scoped to the caller's organization.")
class Query:
    @strawberry.field(
        description="Who is calling; null is never returned, unauthenticated calls fail."
    )
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.caller()
        return Viewer(
            id=strawberry.ID(principal.actor),
            role=principal.role,
            _org_id=principal.organization_id,
        )

    @strawberry.field(
        description="Any object by its global ID; null when it does not exist or is not yours."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID from this API.")],
    ) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(description="The plan catalog, in the catalog's order.")
    def plans(self, info: Info) -> list[Plan]:
        return plans(info)

    @strawberry.field(
        description="Top-up limits and the bonus ladder; the same for every organization."
    )
    def bonus_ladder(self, info: Info) -> BonusLadder:
        info.context.caller()
        return bonus_ladder(info)

    @strawberry.field(
        description="What a top-up would deliver in your organization, bonus included, "
        "before paying: an amountUsd in a USD wallet, a packId in a plan-credit one "
        "(8bit-ai), exactly one of them. What createTopUp would refuse (an amount outside "
        "the limits or not in whole cents, an amount where packs are sold, a pack not "
        "sold) is a BAD_USER_INPUT error."
    )
    async def top_up_quote(
        self,
        info: Info,
        amount_usd: Annotated[
            Decimal | None,
            strawberry.argument(description='The top-up in USD, e.g. "99.99".'),
        ] = None,
        pack_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="A credit pack of the plan (Plan.creditPacks)."),
        ] = None,
    ) -> TopUpQuote:
        return await top_up_quote(info, amount_usd, pack_id)


@strawberry.type(
    description="Every change. Expected failures (not allowed, not found, bad input) are "
    "the payload's userErrors and change nothing; not signed in is UNAUTHENTICATED."
)
class Mutation(
    KeyMutations,
    KeyConsoleMutations,
    KeyTestMutations,
    SpendCapMutations,
    UsageMutations,
    PaymentMutations,
    GrantMutations,
    PaymentMethodMutations,
    AutoScaleMutations,
    PlanMutations,
    AlertMutations,
    WebhookMutations,
):
    # One mixin per domain: each adds its mutations by being listed as a base.
    pass


def build_schema() -> strawberry.Schema:
    # Factories: each request gets fresh extension instances; the caches are shared.
    extensions: list[Any] = [
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        RequestErrorCodes,
        Limits,
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        MaskFaults,
        WebSocketOnly,
        lambda: Admit(DOCUMENTS),
    ]
    config = StrawberryConfig(scalar_map=SCALARS, disable_field_suggestions=True)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=config,
    )


schema = build_schema()
