"""``node(id:)``: any object by its global ID, only within the caller's organization.

An ID of another organization's object, an unknown type or a malformed ID all give
null, the same answer as an ID that does not exist: guessing reveals nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from app.auth import LEDGER_READERS, Principal
from app.graphql.alerts import event_loader, rule_loader
from app.graphql.audit import audit_event_node
from app.graphql.context import Info
from app.graphql.keys import keys_by_id
from app.graphql.org import CreditLot, LedgerEntry, Organization, wallet_node
from app.graphql.payments import transaction_node
from app.graphql.relay import Node
from app.graphql.statements import receipt_node, statement_node
from app.graphql.webhooks import delivery_loader, endpoint_loader
from app.graphql.webhooks import event_loader as webhook_event_loader
from app.ids import parse_global_id
from app.ledger import reads
from app.ledger.book import entries_t
from app.ledger.state import lots_t, orgs_t, wallets
from app.orgs.service import OrgRef

# (connection, caller, row id, now): the node, or None if it is not the caller's.
Loader = Callable[[Connection, Principal, int, datetime], Node | None]


def _organization(conn: Connection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    if row_id != caller.organization_id:
        return None
    row = conn.execute(select(orgs_t).where(orgs_t.c.id == row_id)).one()
    return Organization.of(OrgRef(row.id, row.slug, row.name))


def _wallet(conn: Connection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    row = reads.wallet_of(conn, caller.organization_id)
    return wallet_node(row) if row.id == row_id else None


def _owned(conn: Connection, t: Any, organization_id: int, row_id: int) -> Any:
    """The row of ``t`` (which has a wallet_id) with ``row_id``, if it is the org's."""
    statement = (
        select(t)
        .join(wallets, wallets.c.id == t.c.wallet_id)
        .where(t.c.id == row_id, wallets.c.organization_id == organization_id)
    )
    return conn.execute(statement).first()


def _entry(conn: Connection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    if caller.role not in LEDGER_READERS:
        return None
    row = _owned(conn, entries_t, caller.organization_id, row_id)
    return None if row is None else LedgerEntry.of(row)


def _lot(conn: Connection, caller: Principal, row_id: int, _now: datetime) -> Node | None:
    row = _owned(conn, lots_t, caller.organization_id, row_id)
    return None if row is None else CreditLot.of(row)


def _api_key(conn: Connection, caller: Principal, row_id: int, now: datetime) -> Node | None:
    keys = keys_by_id(conn, caller, [row_id], now)
    return keys[0] if keys else None


LOADERS: dict[str, Loader] = {
    "Organization": _organization,
    "Wallet": _wallet,
    "LedgerEntry": _entry,
    "CreditLot": _lot,
    "ApiKey": _api_key,
    "AuditEvent": audit_event_node,  # owners and admins only
    "BillingTransaction": transaction_node,
    "AlertRule": rule_loader,
    "AlertEvent": event_loader,
    "Receipt": receipt_node,  # people's roles only
    "Statement": statement_node,
    # owners and admins only
    "WebhookEndpoint": endpoint_loader,
    "WebhookDelivery": delivery_loader,
    "WebhookEvent": webhook_event_loader,
}


async def resolve_node(info: Info, global_id: str) -> Node | None:
    caller = info.context.caller()
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] not in LOADERS:
        return None
    type_name, row_id = parsed
    now = info.context.runtime.clock.now()
    return await info.context.runtime.db.read(
        lambda conn: LOADERS[type_name](conn, caller, row_id, now)
    )
