"""Read-only queries over usage records, for the APIs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from app.db import Prebuilt
from app.ledger.state import usage_t
from app.pages import Keyset, Page, at_or_after, before, equal
from app.usage.rollups import DAY, HOUR, floor_day, floor_hour
from app.usage.summary import requests_from


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Every field optional; ``until`` is exclusive. Times are when the call was billed."""

    api_key_id: int | None = None
    model: str | None = None
    action: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# The usage log and its filters, by ``UsageFilter``'s field names.
USAGE_LOG = Keyset(
    lambda: select(usage_t),
    (usage_t.c.created_at, usage_t.c.id),
    {
        "organization_id": equal(usage_t.c.organization_id),
        "api_key_id": equal(usage_t.c.api_key_id),
        "model": equal(usage_t.c.model),
        "action": equal(usage_t.c.action),
        "request_id": equal(usage_t.c.request_id),
        "since": at_or_after(usage_t.c.created_at),
        "until": before(usage_t.c.created_at),
    },
)
_oldest = Prebuilt(
    lambda _dialect, _lock: (
        select(usage_t.c.created_at)
        .where(usage_t.c.organization_id == bindparam("organization_id"))
        .order_by(usage_t.c.created_at)
        .limit(1)
    )
)


def usage_values(organization_id: int, f: UsageFilter) -> dict[str, Any]:
    """``USAGE_LOG``'s values for the organization's records matching ``f``."""
    return {
        "organization_id": organization_id,
        "api_key_id": f.api_key_id,
        "model": f.model,
        "action": f.action,
        "request_id": f.request_id,
        "since": f.since,
        "until": f.until,
    }


def usage_page(
    conn: Connection, organization_id: int, f: UsageFilter, limit: int, after: str | None
) -> Page:
    """A page of the organization's usage records matching ``f``, newest first."""
    return USAGE_LOG.page(conn, usage_values(organization_id, f), limit, after)


def usage_record(conn: Connection, organization_id: int, request_id: str) -> Any:
    """The organization's record of ``request_id``, or None."""
    rows = usage_page(conn, organization_id, UsageFilter(request_id=request_id), 1, None).rows
    return rows[0] if rows else None


def usage_count(conn: Connection, organization_id: int, f: UsageFilter) -> int:
    """How many records match ``f`` (the log's ``totalCount``) without reading them all.

    Without a request id or a time range: the records of the oldest hour still kept,
    counted on the index, plus the rollups from the next hour on (hourly ones to the next
    midnight, daily ones after). Retention prunes whole days, oldest records first, so
    every later hour is still whole in usage and in its rollups; records it pruned are not
    counted, as the log no longer lists them. With a request id or a time range: counted
    on the index the filter uses.
    """
    if f.request_id is not None or f.since is not None or f.until is not None:
        return USAGE_LOG.count(conn, usage_values(organization_id, f))
    oldest = _oldest.first(conn, {"organization_id": organization_id})
    if oldest is None:
        return 0
    next_hour = floor_hour(oldest.created_at) + HOUR
    first_hour = USAGE_LOG.count(conn, usage_values(organization_id, replace(f, until=next_hour)))
    return first_hour + requests_from(
        conn,
        organization_id,
        next_hour,
        floor_day(oldest.created_at) + DAY,
        f.api_key_id,
        f.model,
        f.action,
    )
