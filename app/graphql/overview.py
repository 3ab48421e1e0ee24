"""The organization's billing state (``app.orgs.billing.overview``), read once per
request however many of WalletOverview's fields need it."""

from __future__ import annotations

from app.graphql.context import Info
from app.orgs.billing import Overview, overview


async def overview_of(info: Info, organization_id: int) -> Overview:
    runtime = info.context.runtime
    now = runtime.clock.now()

    async def load(ids: list[int]) -> list[Overview]:
        return await runtime.db.read(lambda conn: [overview(conn, i, now) for i in ids])

    return await info.context.loader("billing_overview", load).load(organization_id)
