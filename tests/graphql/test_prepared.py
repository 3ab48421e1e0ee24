"""Admitted queries (``app/graphql/prepared.py``) and WalletOverview's one read
(``app/graphql/overview.py``): fast, and answering exactly what the full path does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, OperationType, parse, print_ast

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.graphql import schema as schema_module
from app.graphql.http import GRAPHQL_RESPONSE, JSON
from app.graphql.prepared import Admitted, Documents, admitted_request
from app.graphql.schema import DOCUMENTS
from app.ids import to_global_id
from app.keys.service import Caps
from app.money import parse_usd
from app.operations import adjust
from app.settings import Settings
from tests.conftest import Harness, usage_event
from tests.graphql.test_schema import OPERATIONS

# Texts no other test sends, so each test sees the document's first and later sends.
BALANCE = (
    "query PreparedBalance { viewer { organization { slug wallet { id balance { credits } } } } }"
)
LOTS = """query PreparedLots($first: Int!) { viewer { organization { wallet {
  lots(first: $first) { pageInfo { hasNextPage } edges { node { remaining { credits } } } }
} } } }"""
TOP_UP = (
    "mutation ($amount: Decimal!) { createTopUp(input: {amountUsd: $amount}) { clientSecret } }"
)
ALERT = (
    "mutation ($input: CreateAlertRuleInput!) "
    "{ createAlertRule(input: $input) { alertRule { id } } }"
)
LOTS_COUNTED = """query PreparedLotsCounted { viewer { organization { wallet {
  lots(first: 2) { totalCount pageInfo { hasNextPage } edges { node { remaining { credits } } } }
} } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No response cache: these tests count what the fast path reads.
    return settings.model_copy(update={"graphql_cache_seconds": 0})


async def _post(
    harness: Harness, query: str, headers: dict[str, str], accept: str = JSON, **variables: Any
) -> httpx.Response:
    body = {"query": query, "variables": variables}
    return await harness.http.post("/graphql", json=body, headers={"Accept": accept} | headers)


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


def _wallet(body: dict[str, Any]) -> dict[str, Any]:
    wallet: dict[str, Any] = body["data"]["viewer"]["organization"]["wallet"]
    return wallet


async def test_an_admitted_query_reads_the_callers_organization_as_it_is_now(
    harness: Harness,
) -> None:
    acme = await harness.org("acme", grant_usd="10")
    beta = await harness.org("beta", grant_usd="20")
    first = (await _post(harness, BALANCE, harness.token(acme, Role.VIEWER))).json()
    assert _wallet(first)["balance"] == {"credits": "10000000"}
    assert DOCUMENTS.get(BALANCE) is not None  # later sends take the fast path

    # Another organization's caller, same document: its own wallet, nothing of acme's.
    other = (await _post(harness, BALANCE, harness.token(beta, Role.VIEWER))).json()
    assert other["data"]["viewer"]["organization"]["slug"] == "beta"
    assert _wallet(other)["balance"] == {"credits": "20000000"}
    assert _wallet(other)["id"] != _wallet(first)["id"]

    # A usage post over REST, then the same document: the new balance, never a stale one.
    key = await harness.key(acme)
    (result,) = await harness.usage(acme, usage_event(key.id, "prepared-1"))
    assert result["outcome"] == "billed", result
    after = (await _post(harness, BALANCE, harness.token(acme, Role.VIEWER))).json()
    assert _wallet(after)["balance"] == {"credits": str(10_000_000 - 6_000)}
    assert await harness.books() == []


async def test_an_admitted_query_keeps_the_error_rules(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await harness.org("acme", grant_usd="1")
    viewer = harness.token(org, Role.VIEWER)
    assert "errors" not in (await _post(harness, LOTS, viewer, first=1)).json()
    assert DOCUMENTS.get(LOTS) is not None

    # Variables of the wrong type: BAD_USER_INPUT; before execution, so 400 without data
    # for the spec's media type and 200 with data null for legacy JSON clients.
    spec = await _post(harness, LOTS, viewer, accept=GRAPHQL_RESPONSE, first="x")
    assert spec.status_code == 400
    assert "data" not in spec.json()
    assert _codes(spec.json()) == ["BAD_USER_INPUT"]
    assert spec.headers["content-type"] == GRAPHQL_RESPONSE
    legacy = await _post(harness, LOTS, viewer, first="x")
    assert legacy.status_code == 200
    assert legacy.json()["data"] is None
    assert _codes(legacy.json()) == ["BAD_USER_INPUT"]

    # A resolver's refusal keeps its code and path; no token is UNAUTHENTICATED.
    refused = (await _post(harness, LOTS, viewer, first=0)).json()
    assert _codes(refused) == ["BAD_USER_INPUT"]
    assert refused["errors"][0]["path"] == ["viewer", "organization", "wallet", "lots"]
    anonymous = (await _post(harness, LOTS, {}, first=1)).json()
    assert _codes(anonymous) == ["UNAUTHENTICATED"]
    assert anonymous["data"] is None

    # A fault is masked exactly as on the full path.
    async def broken(*_args: object) -> None:
        raise RuntimeError("connection to db-internal-7:5432 refused")

    node = '{ node(id: "prepared") { id } }'
    assert (await _post(harness, node, viewer)).json() == {"data": {"node": None}}
    monkeypatch.setattr(schema_module, "resolve_node", broken)
    masked = await _post(harness, node, viewer)
    assert "db-internal" not in masked.text
    (error,) = masked.json()["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}


async def test_a_subscription_beside_an_admitted_query_is_still_refused_over_http(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    viewer = harness.token(org, Role.VIEWER)
    document = (
        "query PreparedFirst { viewer { role } } "
        "subscription PreparedStream { balanceChanged { balance { credits } } }"
    )
    runs = [
        await harness.http.post(
            "/graphql", json={"query": document, "operationName": name}, headers=viewer
        )
        for name in ("PreparedFirst", "PreparedStream", None)
    ]
    assert [r.json()["data"] for r in runs] == [
        {"viewer": {"role": "VIEWER"}},
        None,
        {"viewer": {"role": "VIEWER"}},  # no name: the first operation, as Strawberry runs
    ]
    assert _codes(runs[1].json()) == ["BAD_USER_INPUT"]
    assert "WebSocket" in runs[1].json()["errors"][0]["message"]


def test_only_plain_requests_for_a_query_of_an_admitted_document_are_taken() -> None:
    documents = Documents(size=2)
    text = "mutation M { x } query Q { y } query R { z }"
    document = parse(text)
    executable = schema_module.schema._schema
    documents.add(text, document, executable)
    prepared = documents.get(text)
    assert prepared is not None
    assert prepared.document is document
    assert admitted_request(documents, {"query": text, "operationName": "Q"}) == Admitted(
        text, prepared, "Q", None
    )
    variables = {"a": 1}
    assert admitted_request(
        documents, {"query": text, "operationName": "R", "variables": variables}
    ) == Admitted(text, prepared, "R", variables)
    for body in (
        {"query": text, "operationName": "M"},  # a mutation
        {"query": text},  # no name: the first operation, the mutation
        {"query": text, "operationName": "S"},  # none of its operations
        {"query": text, "operationName": "Q", "extensions": {}},
        {"query": text, "operationName": "Q", "variables": [1]},
        {"query": "query Q { y }", "operationName": "Q"},  # not admitted
        [{"query": text}],
    ):
        assert admitted_request(documents, body) is None, body
    # Past its size the oldest document goes.
    documents.add("{ a }", parse("{ a }"), executable)
    documents.add("{ b }", parse("{ b }"), executable)
    assert documents.get(text) is None
    assert documents.get("{ a }") is not None


async def test_wallet_overview_is_one_read_transaction(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="5")
    await harness.runtime.subscriptions.change(org.id, "bytez-payg", actor="test")
    owner = harness.token(org, Role.OWNER)
    overview = print_ast(OPERATIONS["WalletOverview"])
    # The caller's organization is looked up once, then cached: not the overview's read
    # (on PostgreSQL the lookup shares the counted engine).
    assert "errors" not in (await _post(harness, print_ast(OPERATIONS["Viewer"]), owner)).json()
    with harness.read_transactions() as transactions:
        for _ in range(2):  # the full path, then the fast one
            transactions.clear()
            body = (await _post(harness, overview, owner)).json()
            assert "errors" not in body, body
            assert len(transactions) == 1
    organization = body["data"]["viewer"]["organization"]
    assert len(organization["wallet"]["lots"]["edges"]) == 2  # the grant and the plan's
    assert organization["subscription"]["plan"]["code"] == "bytez-payg"
    assert organization["autoReload"]["enabled"] is False


async def test_the_first_page_of_lots_read_with_the_wallet_pages_as_any_other(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    now = harness.runtime.clock.now()
    for i, usd in enumerate(("1", "2", "3")):
        await adjust(
            harness.runtime,
            org.id,
            parse_usd(usd),
            "grant",
            actor="test",
            expires_at=now + timedelta(days=30 + i),
        )
    viewer = harness.token(org, Role.VIEWER)
    for _ in range(2):  # the full path, then the fast one
        pages = {}
        for first in (2, 3, 50):
            body = (await _post(harness, LOTS, viewer, first=first)).json()
            pages[first] = _wallet(body)["lots"]
        counted = (await _post(harness, LOTS_COUNTED, viewer)).json()
        assert [
            (
                page["pageInfo"]["hasNextPage"],
                [e["node"]["remaining"]["credits"] for e in page["edges"]],
            )
            for page in (*pages.values(), _wallet(counted)["lots"])
        ] == [
            (True, ["3000000", "2000000"]),
            (False, ["3000000", "2000000", "1000000"]),
            (False, ["3000000", "2000000", "1000000"]),
            (True, ["3000000", "2000000"]),
        ]
        assert _wallet(counted)["lots"]["totalCount"] == 3


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(datetime(2026, 11, 20, 15, 30, tzinfo=UTC))


async def test_every_contract_query_answers_alike_on_both_paths(harness: Harness) -> None:
    """The fast path executes with ``app/graphql/executor.py``; each dashboard query, with
    data in every field it selects, answers the same there as on Strawberry's path."""
    org = await harness.org("acme", grant_usd="50")
    await harness.runtime.subscriptions.change(org.id, "bytez-payg", actor="test")
    caps = Caps(quota=parse_usd("40"), limit_5h=parse_usd("5"), limit_1d=parse_usd("9"))
    keys = [await harness.key(org, caps=caps), await harness.key(org)]
    events = [
        usage_event(keys[n % 2].id, f"both-{n}", model=model, tags={"agent": "coder"})
        for n, model in enumerate(["claude-sonnet-4-6", "gpt-5-mini"] * 3)
    ]
    await harness.usage(org, *events)
    owner = harness.token(org, Role.OWNER)
    for mutation, variables in (
        (TOP_UP, {"amount": "25"}),
        (ALERT, {"input": {"kind": "BALANCE_BELOW", "threshold": "1000"}}),
    ):
        body = (await _post(harness, mutation, owner, **variables)).json()
        assert "errors" not in body, body
    await harness.runtime.alerts.settled()
    now = harness.runtime.clock.now()
    key = to_global_id("ApiKey", keys[0].id)
    variables: dict[str, list[dict[str, Any]]] = {
        "UsageSummary": [
            {"since": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()},
            {"since": (now - timedelta(hours=5)).isoformat(), "until": now.isoformat(),
             "granularity": "HOUR"},
        ],
        "Usage": [{}, {"filter": {"apiKeyId": key}}, {"filter": {"model": "gpt-5-mini"}},
                  {"filter": {"apiKeyId": key, "model": "claude-sonnet-4-6"}}, {"first": 2}],
        "TopUpQuote": [{"amountUsd": "100"}],
        "UsageByTag": [{"since": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}],
    }  # fmt: skip
    queries = [
        (name, document)
        for name, document in OPERATIONS.items()
        if any(
            isinstance(d, OperationDefinitionNode) and d.operation is OperationType.QUERY
            for d in document.definitions
        )
    ]
    assert len(queries) >= 10
    for name, document in queries:
        text = print_ast(document) + "\n# both paths"
        for given in variables.get(name, [{}]):
            # A GET always takes the full path (and admits the text): Strawberry's answer,
            # the reference for the POST's on the fast path.
            full = (
                await harness.http.get(
                    "/graphql",
                    params={"query": text, "variables": json.dumps(given)},
                    headers=owner,
                )
            ).json()
            fast = (await _post(harness, text, owner, **given)).json()
            assert DOCUMENTS.get(text) is not None
            assert "errors" not in full, (name, full)
            assert fast == full, name
