"""CSV downloads: the usage log, the ledger and the billing transactions, each with the
filters of its GraphQL list, for the same callers.

An export streams newest first in keyset pages of ``PAGE`` rows, one short read each, so
one of any size holds one page in memory. Cells are what the API shows: credits as
integers, USD as its six-decimal strings, times in ISO 8601, global ids.

Every text cell is neutralised for spreadsheets (OWASP's CSV injection): when it starts
with ``= + - @``, a tab or a CR it gets a leading single quote. Only text from outside
(a memo, a reference, a model, a request id, a decline reason) can; ids, enums and
times never do. Figures (``int`` and ``Figure`` cells) never are: the server formats
them from integers, so ``-0.500000`` stays the number it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.api.rest import params
from app.api.rest.principal import key_headers, require, runtime
from app.auth import LEDGER_READERS
from app.ids import to_global_id
from app.ledger.reads import ENTRIES, TRANSACTIONS, wallet_of
from app.money import format_usd
from app.pages import Keyset
from app.payments.ladder import percent
from app.usage.reads import USAGE_LOG, usage_values

# Rows per read transaction while streaming.
PAGE = 1000
# What a spreadsheet takes a cell starting with to be a formula (OWASP).
FORMULA = ("=", "+", "-", "@", "\t", "\r")


class Figure(str):
    """A number the server formatted from an integer (USD, a percent): written as is."""


Cell = str | int | None


def safe(value: Cell) -> Cell:
    """The cell as written: text a spreadsheet would run as a formula, quoted."""
    if isinstance(value, str) and not isinstance(value, Figure) and value.startswith(FORMULA):
        return "'" + value
    return value


def amount(credits: int) -> tuple[int, Figure]:
    """An amount's two cells, as ``{credits, usd}`` in the API."""
    return credits, Figure(format_usd(credits))


def amount_columns(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}.{part}" for name in names for part in ("credits", "usd"))


def _csv(rows: Iterable[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def stream(
    request: Request,
    filename: str,
    columns: tuple[str, ...],
    keyset: Keyset,
    values: dict[str, Any],
    render: Callable[[Any], Sequence[Cell]],
) -> StreamingResponse:
    """The rows of ``keyset`` matching ``values`` as a CSV download, ``render`` giving
    each row's cells in ``columns``' order. Check the request before: once streaming
    starts, the status is sent."""
    db = runtime(request).db

    async def body() -> AsyncIterator[str]:
        yield _csv([columns])
        after: str | None = None
        while True:
            page = await db.read(partial(keyset.page, values=values, limit=PAGE, after=after))
            yield _csv([safe(value) for value in render(row)] for row in page.rows)
            if not page.has_next:
                return
            after = keyset.cursor(page.rows[-1])

    headers = key_headers(request) | {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=headers)


USAGE_COLUMNS = (
    "request_id",
    "api_key_id",
    "model",
    "action",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "units",
    "credits",
    "usd",
    "created_at",
)


async def usage_csv(request: Request) -> Response:
    """The usage log with the filters of ``/usage`` (an API key: its own calls). Its
    credits sum to ``usageSummary``'s total over the same range."""
    principal = await require(request)
    params.only(request, params.USAGE_FILTERS)
    values = usage_values(
        principal.organization_id, params.usage_filter(request, principal.api_key_id)
    )
    return stream(request, "usage.csv", USAGE_COLUMNS, USAGE_LOG, values, _usage_row)


def _usage_row(row: Any) -> Sequence[Cell]:
    return (
        row.request_id,
        to_global_id("ApiKey", row.api_key_id),
        row.model,
        row.action,
        row.status,
        row.prompt_tokens,
        row.completion_tokens,
        row.units,
        *amount(row.cost),
        row.created_at.isoformat(),
    )


LEDGER_COLUMNS = (
    "id",
    "kind",
    *amount_columns("amount", "balance_after"),
    "reference",
    "memo",
    "created_at",
)


async def ledger_csv(request: Request) -> Response:
    """``Wallet.entries`` with its filter (``kind``, ``since``, ``until``); not for an API
    key, as there."""
    principal = await require(request, *LEDGER_READERS)
    params.only(request, params.ENTRY_FILTERS)
    wanted = params.entry_filter(request)
    organization_id = principal.organization_id
    wallet = await runtime(request).db.read(lambda conn: wallet_of(conn, organization_id))
    return stream(
        request, "ledger.csv", LEDGER_COLUMNS, ENTRIES, wanted.values(wallet.id), _entry_row
    )


def _entry_row(row: Any) -> Sequence[Cell]:
    return (
        to_global_id("LedgerEntry", row.id),
        row.kind,
        *amount(row.amount),
        *amount(row.balance_after),
        row.reference,
        row.memo,
        row.created_at.isoformat(),
    )


TRANSACTION_COLUMNS = (
    "id",
    "kind",
    "status",
    *amount_columns("amount", "credits_bought", "bonus"),
    "bonus_percent",
    *amount_columns("credits", "refunded", "shortfall"),
    "failure_reason",
    "memo",
    "top_up_id",
    "created_at",
    "settled_at",
)


async def transactions_csv(request: Request) -> Response:
    """``billingTransactions`` with its filter (``kind``, ``status``, ``since``, ``until``),
    the columns of ``/billing/transactions`` with each amount in two."""
    principal = await require(request)
    params.only(request, params.TRANSACTION_FILTERS)
    values = params.transaction_filter(request).values(principal.organization_id)
    return stream(
        request,
        "billing-transactions.csv",
        TRANSACTION_COLUMNS,
        TRANSACTIONS,
        values,
        _transaction_row,
    )


def _transaction_row(row: Any) -> Sequence[Cell]:
    return (
        to_global_id("BillingTransaction", row.id),
        row.kind,
        row.status,
        *amount(row.amount),
        *amount(row.credits_bought),
        *amount(row.bonus),
        Figure(percent(row.bonus_basis_points)),
        *amount(row.credits),
        *amount(row.refunded),
        *amount(row.shortfall),
        row.failure_reason,
        row.memo,
        None if row.top_up_id is None else to_global_id("BillingTransaction", row.top_up_id),
        row.created_at.isoformat(),
        None if row.settled_at is None else row.settled_at.isoformat(),
    )
