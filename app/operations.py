"""Administrative operations over a running process: the CLI, the demo and tests use these."""

from __future__ import annotations

from datetime import datetime

from app import audit
from app.keys import service as keys
from app.ledger.jobs import Adjust, Posted, PostEntry
from app.ledger.tables import EntryKind
from app.orgs.service import OrgError, OrgRef, create_org
from app.plans.service import PlanError
from app.runtime import Runtime


async def create_organization(
    rt: Runtime,
    *,
    slug: str,
    name: str | None = None,
    grant: int = 0,
    actor: str = "cli",
    rate_card: str = "standard",
    plan: str | None = None,
) -> OrgRef:
    """A new organization and wallet, with an opening grant when ``grant`` is positive,
    on ``plan`` when given (an operator's assignment: its trial allowance, if any, lands
    too). ``rate_card`` (a price-book card) decides its unit: USD credits or plan credits."""
    if rate_card not in rt.prices.cards:
        raise OrgError(f"no rate card {rate_card!r}; the price book has {list(rt.prices.cards)}")
    if plan is not None:
        try:
            rt.subscriptions.eligible(plan, rate_card, by_operator=True)
        except PlanError as error:
            raise OrgError(str(error)) from None
    now = rt.clock.now()
    async with rt.db.write(None) as conn:  # a new organization: no id yet
        org = await create_org(conn, slug=slug, name=name, now=now, rate_card=rate_card)
        await audit.record(
            conn,
            organization_id=org.id,
            actor=actor,
            action="organization.create",
            target=f"organization:{org.id}",
            at=now,
            after={"slug": org.slug, "name": org.name},
        )
    if grant:
        await adjust(rt, org.id, grant, "opening grant", actor=actor)
    if plan is not None:
        await rt.subscriptions.change(org.id, plan, actor=actor, by_operator=True)
    return org


async def adjust(
    rt: Runtime,
    organization_id: int,
    amount: int,
    reason: str,
    *,
    actor: str,
    expires_at: datetime | None = None,
) -> Posted:
    """A manual adjustment with its reason: credits (a new lot) or debits (spent in order).

    The entry and its audit record commit together, in the writer's transaction."""
    entry = PostEntry(
        organization_id,
        EntryKind.ADJUSTMENT,
        amount,
        f"adjustment:{actor}",
        memo=reason,
        expires_at=expires_at,
    )
    posted: Posted = await rt.writer.run(Adjust(entry, actor))
    return posted


async def create_api_key(
    rt: Runtime,
    organization_id: int,
    name: str,
    *,
    actor: str = "cli",
    group: str = "default",
    owner: str | None = None,
    caps: keys.Caps = keys.NO_CAPS,
    expires_in_days: int | None = None,
) -> keys.CreatedKey:
    async with rt.db.write(organization_id) as conn:
        return await keys.create_key(
            conn,
            rt.vault,
            organization_id=organization_id,
            name=name,
            actor=actor,
            now=rt.clock.now(),
            group=group,
            owner=owner,
            caps=caps,
            expires_in_days=expires_in_days,
        )


async def rotate_api_key(
    rt: Runtime, organization_id: int, key_id: int, *, actor: str = "cli"
) -> keys.CreatedKey:
    """A new secret for the key; the old one stops working at once."""
    async with rt.db.write(organization_id) as conn:
        return await keys.rotate_key(
            conn,
            rt.vault,
            organization_id=organization_id,
            key_id=key_id,
            actor=actor,
            now=rt.clock.now(),
        )
