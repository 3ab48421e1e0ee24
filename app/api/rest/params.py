"""The query parameters of the REST lists and exports, each checked: a 400 naming it
otherwise. The filters are the GraphQL lists' (``UsageFilter``, ``LedgerEntryFilter``,
``BillingTransactionFilter``), in snake_case with the REST API's lowercase values."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from starlette.requests import Request

from app.api.rest.http import invalid
from app.fields import digits, utc
from app.ledger.reads import EntryFilter, TransactionFilter
from app.ledger.tables import EntryKind
from app.pages import MAX_PAGE
from app.payments.tables import TransactionKind, TransactionStatus
from app.usage.reads import UsageFilter

E = TypeVar("E", bound=StrEnum)

DEFAULT_LIMIT = 20
# Each list's filters: what its CSV accepts (the JSON lists also take limit and cursor).
USAGE_FILTERS = ("model", "request_id", "since", "until")
ENTRY_FILTERS = ("kind", "since", "until")
TRANSACTION_FILTERS = ("kind", "status", "since", "until")


def only(request: Request, names: tuple[str, ...]) -> None:
    """Refuse a parameter the endpoint does not know: a misspelt filter would otherwise
    be ignored and export everything."""
    unknown = sorted(set(request.query_params) - set(names))
    if unknown:
        raise invalid(f"{unknown[0]}: not a parameter here; use {', '.join(names)}")


def limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not digits(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise invalid(f"limit: must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        at = utc(datetime.fromisoformat(raw))
    except ValueError:
        at = None
    if at is None:
        raise invalid(f"{name}: must be an ISO 8601 time with a time zone, in years 1 to 9999")
    return at


def choice(request: Request, name: str, values: type[E]) -> E | None:
    """One of ``values``, as the REST API shows it (``top_up``) or as GraphQL names it
    (``TOP_UP``): the two spellings the OpenAPI document lists."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    for value in values:
        if raw in (value, value.upper()):
            return value
    raise invalid(f"{name}: must be one of {', '.join(values)}")


def text(request: Request, name: str) -> str | None:
    """A free-text filter; NUL, which no stored text holds and PostgreSQL refuses to
    compare with, is a 400."""
    raw = request.query_params.get(name)
    if raw is not None and "\x00" in raw:
        raise invalid(f"{name}: must not contain NUL characters")
    return raw


def usage_filter(request: Request, api_key_id: int | None) -> UsageFilter:
    return UsageFilter(
        api_key_id=api_key_id,
        model=text(request, "model"),
        request_id=text(request, "request_id"),
        since=time(request, "since"),
        until=time(request, "until"),
    )


def entry_filter(request: Request) -> EntryFilter:
    return EntryFilter(
        kind=choice(request, "kind", EntryKind),
        since=time(request, "since"),
        until=time(request, "until"),
    )


def transaction_filter(request: Request) -> TransactionFilter:
    return TransactionFilter(
        kind=choice(request, "kind", TransactionKind),
        status=choice(request, "status", TransactionStatus),
        since=time(request, "since"),
        until=time(request, "until"),
    )
