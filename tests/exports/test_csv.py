"""The CSV exports over HTTP: the ledger and the billing transactions parse back to the
figures their GraphQL lists show for the same filter (and the REST list, for
transactions), text that a spreadsheet would run as a formula is neutralised whatever it
is, figures are never, bad filters are 400s, callers are those of the GraphQL lists, and
an export of thousands of rows streams page by page."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from starlette.applications import Starlette

from app.api.rest import exports
from app.auth import Role
from app.clock import FrozenClock
from app.main import create_app
from app.operations import adjust
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, usage_event
from tests.graphql.conftest import server  # noqa: F401  (fixtures, with this module's settings)
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness, paying, stripe_standin  # noqa: F401

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEDGER_CSV = "/api/v1/me/ledger.csv"
TRANSACTIONS_CSV = "/api/v1/me/billing/transactions.csv"

LEDGER = """
query Ledger($after: String, $filter: LedgerEntryFilter) {
  viewer { organization { wallet {
    entries(first: 100, after: $after, filter: $filter) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node {
        id kind amount { credits usd } balanceAfter { credits usd } reference memo createdAt
      } }
  } } } }
}
"""
TRANSACTIONS = """
query Transactions($after: String, $filter: BillingTransactionFilter) {
  viewer { organization {
    billingTransactions(first: 100, after: $after, filter: $filter) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node {
        id kind status amount { credits usd } creditsBought { credits usd }
        bonus { credits usd } bonusPercent credits { credits usd } refunded { credits usd }
        shortfall { credits usd } failureReason memo topUpId createdAt settledAt
      } }
  } } }
}
"""
TOP_UP = """
mutation ($input: CreateTopUpInput!) {
  createTopUp(input: $input) { topUp { id } userErrors { code message } }
}
"""
REFUND = """
mutation ($input: RefundTopUpInput!) {
  refundTopUp(input: $input) { refund { id } userErrors { code message } }
}
"""
# What a spreadsheet runs as a formula when a cell starts with it (OWASP).
FORMULA = ("=", "+", "-", "@", "\t", "\r")
# Free text from outside: the only cells that may be neutralised.
TEXT = {"reference", "memo", "failure_reason", "request_id", "model", "action"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


def neutralised(text: str) -> str:
    return "'" + text if text.startswith(FORMULA) else text


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def as_csv(record: dict[str, Any]) -> dict[str, str]:
    """A GraphQL node or a REST item as its CSV row should read: amounts in two columns,
    enums as REST shows them, text neutralised, null empty."""
    row: dict[str, str] = {}
    for key, value in record.items():
        name = snake(key)
        if isinstance(value, dict):
            row[f"{name}.credits"], row[f"{name}.usd"] = value["credits"], value["usd"]
        elif value is None:
            row[name] = ""
        elif name in ("kind", "status"):
            row[name] = value.lower()
        else:
            row[name] = neutralised(value) if name in TEXT else value
    return row


def parse(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


async def graphql_list(
    harness: Harness, query: str, headers: dict[str, str], filter: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every node of the list, page after page, and its totalCount."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = await harness.graphql(query, headers=headers, after=after, filter=filter)
        assert "errors" not in body, body
        organization = body["data"]["viewer"]["organization"]
        wallet = organization.get("wallet")
        found = wallet["entries"] if wallet else organization["billingTransactions"]
        nodes += [edge["node"] for edge in found["edges"]]
        if not found["pageInfo"]["hasNextPage"]:
            return nodes, found["totalCount"]
        after = found["pageInfo"]["endCursor"]


def graphql_filter(params: dict[str, str]) -> dict[str, str]:
    """A REST filter as the GraphQL list's: the same names, enums by their GraphQL name."""
    return {k: v.upper() if k in ("kind", "status") else v for k, v in params.items()}


async def top_up(harness: Harness, org: OrgRef, usd: str) -> str:
    body = await harness.graphql(TOP_UP, harness.token(org, Role.OWNER), input={"amountUsd": usd})
    assert body["data"]["createTopUp"]["userErrors"] == [], body
    return str(body["data"]["createTopUp"]["topUp"]["id"])


async def history(harness: Harness, clock: FrozenClock) -> tuple[OrgRef, datetime]:
    """An organization with two hours of money moving: grants, top-ups with bonuses, usage,
    a debit of 0.50 USD, a refund; and when the second hour began."""
    org = await harness.org("acme", grant_usd="25")
    key = await harness.key(org)
    paid = await top_up(harness, org, "99.99")
    await harness.usage(org, *(usage_event(key.id, f"a{i}") for i in range(5)))
    clock.advance(timedelta(hours=1))
    mid = clock.now()
    await adjust(harness.runtime, org.id, -500_000, "-0.50: a duplicate charge", actor="test")
    refunded = await harness.graphql(
        REFUND,
        harness.token(org, Role.ADMIN),
        input={"topUpId": paid, "amountUsd": "1.00", "reason": '=HYPERLINK("x") asked'},
    )
    assert refunded["data"]["refundTopUp"]["userErrors"] == [], refunded
    await harness.usage(org, *(usage_event(key.id, f"b{i}", prompt_tokens=7) for i in range(3)))
    await top_up(harness, org, "5")
    clock.advance(timedelta(minutes=5))
    return org, mid


# Filters of each list, "mid" and "end" standing for the second hour's start and after it.
LEDGER_FILTERS = [
    {"kind": "usage"},
    {"kind": "ADJUSTMENT"},
    {"kind": "refund"},
    {"since": "mid"},
    {"until": "mid"},
    {"kind": "usage", "since": "mid", "until": "end"},
    {"since": "end"},
]
TRANSACTION_FILTERS = [
    {"kind": "top_up"},
    {"kind": "REFUND"},
    {"status": "succeeded"},
    {"status": "pending"},
    {"since": "mid"},
    {"until": "mid"},
    {"kind": "top_up", "since": "mid", "until": "end"},
]


async def test_ledger_csv_is_the_graphql_ledger(harness: Harness, clock: FrozenClock) -> None:
    org, mid = await history(harness, clock)
    times = {"mid": mid.isoformat(), "end": clock.now().isoformat()}
    headers = harness.token(org, Role.VIEWER)

    rows = parse(await harness.http.get(LEDGER_CSV, headers=headers))
    nodes, total = await graphql_list(harness, LEDGER, headers)
    assert list(rows[0]) == list(exports.LEDGER_COLUMNS)
    assert rows == [as_csv(node) for node in nodes]
    assert len(rows) == total == 1 + 2 + 5 + 1 + 1 + 3 + 1  # the 5 USD top-up earns no bonus
    # Newest first, each balance the one after it plus its amount.
    for newer, older in itertools.pairwise(rows):
        later = int(older["balance_after.credits"]) + int(newer["amount.credits"])
        assert int(newer["balance_after.credits"]) == later
    balance, _ = await harness.balance(org)
    assert rows[0]["balance_after.credits"] == str(balance)
    # A negative figure stays the exact number the API shows; a memo that starts with a
    # minus sign is text, neutralised.
    (debit,) = [r for r in rows if r["memo"].endswith("a duplicate charge")]
    assert (debit["amount.credits"], debit["amount.usd"]) == ("-500000", "-0.500000")
    assert debit["memo"] == "'-0.50: a duplicate charge"

    for wanted in LEDGER_FILTERS:
        params = {k: times.get(v, v) for k, v in wanted.items()}
        rows = parse(await harness.http.get(LEDGER_CSV, params=params, headers=headers))
        nodes, total = await graphql_list(harness, LEDGER, headers, graphql_filter(params))
        assert rows == [as_csv(node) for node in nodes], wanted
        assert len(rows) == total, wanted
        assert rows or wanted == {"since": "end"}, wanted


async def test_transactions_csv_is_the_graphql_and_rest_list(
    harness: Harness, clock: FrozenClock
) -> None:
    org, mid = await history(harness, clock)
    times = {"mid": mid.isoformat(), "end": clock.now().isoformat()}
    headers = harness.token(org, Role.VIEWER)

    rows = parse(await harness.http.get(TRANSACTIONS_CSV, headers=headers))
    assert list(rows[0]) == list(exports.TRANSACTION_COLUMNS)
    assert [r["kind"] for r in rows] == ["top_up", "refund", "adjustment", "top_up", "adjustment"]
    refund = rows[1]
    assert (refund["amount.usd"], refund["memo"]) == ("1.000000", '\'=HYPERLINK("x") asked')
    assert refund["credits.credits"] == "-1030000"  # with its share of the bonus
    assert refund["top_up_id"] == rows[3]["id"]
    assert (rows[3]["bonus_percent"], rows[3]["bonus.usd"]) == ("3", "2.999700")

    for wanted in [{}, *TRANSACTION_FILTERS]:
        params = {k: times.get(v, v) for k, v in wanted.items()}
        rows = parse(await harness.http.get(TRANSACTIONS_CSV, params=params, headers=headers))
        nodes, total = await graphql_list(harness, TRANSACTIONS, headers, graphql_filter(params))
        listed = await harness.http.get(
            "/api/v1/me/billing/transactions", params=params | {"limit": "100"}, headers=headers
        )
        assert rows == [as_csv(node) for node in nodes], wanted
        assert rows == [as_csv(item) for item in listed.json()["data"]], wanted
        assert len(rows) == total, wanted
        assert rows or wanted == {"status": "pending"}, wanted


async def test_pending_and_failed_top_ups_export_as_stripe_left_them(
    paying: StripeHarness,  # noqa: F811
) -> None:
    h = paying
    org = await h.app.org()
    headers = h.app.token(org, Role.VIEWER)
    for usd in ("25", "50", "99.99"):
        await top_up(h.app, org, usd)
    declined, _, paid = h.standin.objects_of("payment_intent")
    failed = h.standin.fail_payment_intent(declined["id"], decline_code="insufficient_funds")
    await h.webhook(stripe_events.event("payment_intent.payment_failed", failed))
    succeeded = h.standin.succeed_payment_intent(paid["id"])
    await h.webhook(stripe_events.event("payment_intent.succeeded", succeeded))

    by_status: dict[str, dict[str, str]] = {}
    for status in ("pending", "succeeded", "failed"):
        params = {"status": status}
        rows = parse(await h.app.http.get(TRANSACTIONS_CSV, params=params, headers=headers))
        nodes, _ = await graphql_list(h.app, TRANSACTIONS, headers, graphql_filter(params))
        assert rows == [as_csv(node) for node in nodes]
        (by_status[status],) = rows
    assert by_status["pending"]["amount.usd"] == "50.000000"
    assert (by_status["pending"]["credits.credits"], by_status["pending"]["settled_at"]) == (
        "0",
        "",
    )
    assert by_status["failed"]["failure_reason"] == "Your card was declined. (insufficient_funds)"
    assert by_status["succeeded"]["credits.usd"] == "102.989700"


async def test_usage_csv_neutralises_the_gateway_text(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    await harness.usage(org, usage_event(key.id, "=cmd|' /C calc'!A0"), usage_event(key.id, "r2"))
    rows = parse(await harness.http.get("/api/v1/me/usage.csv", headers=harness.token(org)))
    assert [r["request_id"] for r in rows] == ["r2", "'=cmd|' /C calc'!A0"]  # newest first
    assert {(r["credits"], r["usd"]) for r in rows} == {("6000", "0.006000")}


# Text as people and gateways send it, often starting as a formula would.
_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=120
)
outside_text = st.one_of(_text, st.builds(str.__add__, st.sampled_from(FORMULA), _text))


ORGS = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(memo=outside_text, request_id=outside_text.filter(str.strip))
async def test_outside_text_is_neutralised_and_nothing_else_changes(
    harness: Harness, memo: str, request_id: str
) -> None:
    org = await harness.org(f"org-{next(ORGS)}")  # the examples share the test's database
    key = await harness.key(org)
    await adjust(harness.runtime, org.id, 1_000_000, memo, actor="test")
    await harness.usage(org, usage_event(key.id, request_id))
    headers = harness.token(org, Role.VIEWER)

    usage, credit = parse(await harness.http.get(LEDGER_CSV, headers=headers))
    assert usage["reference"] == f"usage:{request_id}"  # its prefix makes it safe already
    assert (usage["amount.credits"], usage["amount.usd"]) == ("-6000", "-0.006000")
    assert (credit["memo"], credit["amount.usd"]) == (neutralised(memo), "1.000000")
    (billed,) = parse(
        await harness.http.get(
            "/api/v1/me/usage.csv", params={"request_id": request_id}, headers=headers
        )
    )
    assert billed["request_id"] == neutralised(request_id)
    (transaction,) = parse(await harness.http.get(TRANSACTIONS_CSV, headers=headers))
    assert transaction["memo"] == neutralised(memo)
    # No text cell starts as a formula; the only cells that start with a minus sign are
    # the figures, exact.
    for row in (usage, credit, billed, transaction):
        for column, cell in row.items():
            if column in TEXT:
                assert not cell.startswith(FORMULA), (column, cell)
            elif cell.startswith(FORMULA):
                assert re.fullmatch(r"-[0-9]+(\.[0-9]{6})?", cell), (column, cell)


BAD_FILTERS = [
    (LEDGER_CSV, {"kind": "gift"}, "kind: must be one of top_up, bonus, plan_allocation"),
    (TRANSACTIONS_CSV, {"status": "paid"}, "status: must be one of pending, succeeded, failed"),
    (TRANSACTIONS_CSV, {"kind": "usage"}, "kind: must be one of top_up, auto_reload"),
    (LEDGER_CSV, {"since": "yesterday"}, "since: must be an ISO 8601 time with a time zone"),
    (LEDGER_CSV, {"until": "2026-03-01T00:00:00"}, "until: must be an ISO 8601 time with"),
    (TRANSACTIONS_CSV, {"since": ""}, "since: must be an ISO 8601 time"),
    (LEDGER_CSV, {"knd": "usage"}, "knd: not a parameter here; use kind, since, until"),
    (TRANSACTIONS_CSV, {"limit": "5"}, "limit: not a parameter here"),
    ("/api/v1/me/usage.csv", {"cursor": "x"}, "cursor: not a parameter here"),
    ("/api/v1/me/billing/transactions", {"kind": "gift"}, "kind: must be one of"),
]


async def test_bad_filters_are_400s_that_say_why(harness: Harness) -> None:
    org = await harness.org("acme")
    for path, params, message in BAD_FILTERS:
        response = await harness.http.get(path, params=params, headers=harness.token(org))
        assert response.status_code == 400, (path, params, response.text)
        body = response.json()
        assert (body["status"], body["code"]) == (400, "invalid_input")
        assert body["message"].startswith(message), body["message"]


@pytest.mark.parametrize("query", [LEDGER, TRANSACTIONS], ids=["entries", "billingTransactions"])
async def test_graphql_filters_without_a_time_zone_are_bad_input(
    harness: Harness, query: str
) -> None:
    org = await harness.org("acme")
    body = await harness.graphql(
        query, harness.token(org, Role.VIEWER), filter={"since": "2026-03-01T00:00:00"}
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"] == "filter.since: give a time zone (such as Z)"


async def test_the_exports_serve_whom_the_graphql_lists_serve(
    harness: Harness, clock: FrozenClock
) -> None:
    org, _ = await history(harness, clock)
    other = await harness.org("globex", grant_usd="3")
    key, revoked = await harness.key(org), await harness.key(org)
    await harness.revoke(org, revoked)
    callers = {role.value: harness.token(org, role) for role in Role if role is not Role.API_KEY}
    callers["api key"] = {"Authorization": f"Bearer {key.secret}"}
    for path, query in ((LEDGER_CSV, LEDGER), (TRANSACTIONS_CSV, TRANSACTIONS)):
        everything = [
            node["id"] for node in (await graphql_list(harness, query, callers["owner"]))[0]
        ]
        for name, headers in callers.items():
            if name == "api key" and path == LEDGER_CSV:
                continue  # below: the ledger lists every key's calls
            nodes, _ = await graphql_list(harness, query, headers)
            rows = parse(await harness.http.get(path, headers=headers))
            assert [r["id"] for r in rows] == [n["id"] for n in nodes] == everything, name
        # Another organization's caller sees its own rows only, never these.
        theirs = parse(await harness.http.get(path, headers=harness.token(other, Role.OWNER)))
        assert theirs
        assert not {r["id"] for r in theirs} & set(everything)
        if path == LEDGER_CSV:
            refused = await harness.http.get(path, headers=callers["api key"])
            assert refused.status_code == 403, refused.text
            body = await harness.graphql(query, callers["api key"])
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            assert body["errors"][0]["path"][-1] == "entries"
        for headers in ({}, {"Authorization": f"Bearer {revoked.secret}"}):
            refused = await harness.http.get(path, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["status"] == 401
            body = await harness.graphql(query, headers)
            assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@asynccontextmanager
async def asgi(settings: Settings, clock: FrozenClock) -> AsyncIterator[tuple[Starlette, Harness]]:
    """The app itself, to watch what it sends, and a harness on it to set up with."""
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, Harness(app.state.runtime, http)


ROWS = 5000


async def test_a_large_ledger_streams_one_page_at_a_time(
    settings: Settings, clock: FrozenClock
) -> None:
    async with asgi(settings, clock) as (app, harness):
        org = await harness.org("acme", grant_usd="100")
        key = await harness.key(org)
        for batch in range(ROWS // 1000):
            await harness.usage(org, *(usage_event(key.id, f"r{batch}-{i}") for i in range(1000)))
        token = harness.token(org, Role.VIEWER)["Authorization"].encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": LEDGER_CSV,
            "raw_path": LEDGER_CSV.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test"), (b"authorization", token)],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        # What the app did, in order: ("read", 0) as it queries the ledger, ("sent", rows)
        # as it sends a chunk of the body.
        happened: list[tuple[str, int]] = []
        start: dict[str, Any] = {}
        body = io.StringIO(newline="")
        requested, done = False, asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif chunk := message.get("body", b"").decode():
                body.write(chunk)
                happened.append(("sent", chunk.count("\r\n")))

        def on_execute(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            if "ledger_entries" in statement:
                happened.append(("read", 0))

        engine = harness.runtime.db.read_engine
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            await app(scope, receive, send)
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
            done.set()

    assert start["status"] == 200
    assert b"content-length" not in dict(start["headers"])  # so HTTP/1.1 sends it chunked
    rows = list(csv.DictReader(io.StringIO(body.getvalue(), newline="")))
    assert len(rows) == ROWS + 1
    assert [r["reference"] for r in rows[:2]] == ["usage:r4-999", "usage:r4-998"]
    assert rows[-1]["memo"] == "opening grant"
    # The header line, then each page read and sent before the next is read: the app never
    # holds more than one page of PAGE rows, whatever the ledger's length.
    header = happened.index(("sent", 1))
    pages = -(-(ROWS + 1) // exports.PAGE)
    assert happened[header + 1 :: 2] == [("read", 0)] * pages
    sent = happened[header + 2 :: 2]
    assert [what for what, _ in sent] == ["sent"] * pages
    assert [n for _, n in sent] == [exports.PAGE] * (pages - 1) + [(ROWS + 1) % exports.PAGE]


async def test_the_exports_are_chunked_on_the_wire(
    server: Harness,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "PAGE", 2)
    org = await server.org("acme", grant_usd="10")
    key = await server.key(org)
    await server.usage(org, *(usage_event(key.id, f"r{i}") for i in range(5)))
    await adjust(server.runtime, org.id, 1_000_000, "more", actor="test")
    expected = {LEDGER_CSV: 7, TRANSACTIONS_CSV: 2, "/api/v1/me/usage.csv": 5}
    for path, count in expected.items():
        async with server.http.stream("GET", path, headers=server.token(org)) as response:
            assert response.status_code == 200
            assert response.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in response.headers
            assert response.headers["content-disposition"].startswith("attachment; filename=")
            text = "".join([chunk async for chunk in response.aiter_text()])
        assert len(list(csv.DictReader(io.StringIO(text, newline="")))) == count
