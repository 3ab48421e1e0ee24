"""The limits an operation runs within (app/graphql/limits.py), through /graphql: its
cost, the size of its variables, batches, and the time a query may run. Each refusal is
a clear error, made before any work, and the next request is served as usual."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, get_introspection_query, parse
from sqlalchemy import event

from app.auth import Role
from app.graphql.http import GRAPHQL_RESPONSE, JSON
from app.graphql.limits import (
    _introspection_sizes,
    check_variables,
    list_sizes,
    operation_cost,
    worst_cost,
)
from app.graphql.schema import DOCUMENTS, schema
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, usage_event

CONTRACT = Path(__file__).parents[2] / "frontend-examples" / "operations" / "dashboard.graphql"
LIMIT = Settings().graphql_max_cost
# Only to notice a hang; never a bound on how fast anything is.
WAIT = 10

# Connections at first: 100 on every level the schema nests them, within the depth limit.
NESTED = """
query Nested {
  viewer { organization {
    statements(first: 100) { edges { node { id
      receipts { id number transaction { id amount { usd } } refundOf { id } }
      usageByModelAndAction { model action requests amount { usd } }
    } } }
    webhookEndpoints { deliveries(first: 100) { edges { node {
      id attempts { attempt statusCode } event { id type }
    } } } }
    usage(first: 100) { edges { node { id tags { key value } apiKey { id windows { window } } } } }
  } }
}
"""
# The same, through fragments nested in fragments.
NESTED_IN_FRAGMENTS = """
query Nested { viewer { organization { ...Lists } } }
fragment Lists on Organization {
  statements(first: 100) { edges { node { ...StatementLines } } }
  webhookEndpoints { deliveries(first: 100) { edges { node { ...Delivery } } } }
  usage(first: 100) { edges { node { id tags { key value } apiKey { ...Key } } } }
}
fragment StatementLines on Statement {
  id
  receipts { id number transaction { id amount { usd } } refundOf { id } }
  usageByModelAndAction { model action requests amount { usd } }
}
fragment Delivery on WebhookDelivery { id attempts { attempt statusCode } event { id type } }
fragment Key on ApiKey { id windows { window } }
"""
STATEMENTS = """
query Statements($n: Int!) { viewer { organization { statements(first: $n) { edges { node {
  id month closed
  receipts { id number kind total { amount } }
  usageByModelAndAction { model action requests amount { usd } }
} } } } } }
"""
USAGE_PAGE = (
    "{ viewer { organization { usage(first: 100) { totalCount edges { node { id } } } } } }"
)
KEY_COUNT = "{ viewer { organization { apiKeys { totalCount } } } }"


def _cost(query: str, variables: dict[str, Any] | None = None) -> int:
    return operation_cost(schema._schema, parse(query), None, variables, list_sizes(Settings()))


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


async def _post(
    harness: Harness, body: object, headers: dict[str, str], accept: str = JSON
) -> httpx.Response:
    return await harness.http.post("/graphql", json=body, headers={"Accept": accept} | headers)


async def _served(harness: Harness, org: OrgRef) -> None:
    """A normal request right after a refusal: answered as ever."""
    body = await harness.graphql(KEY_COUNT, headers=harness.token(org, Role.OWNER))
    assert body == {"data": {"viewer": {"organization": {"apiKeys": {"totalCount": 0}}}}}


async def _signed_in(harness: Harness, headers: dict[str, str]) -> None:
    """Signs the caller in once (its token is then cached), so that what a test counts
    next is its request's own reads."""
    assert (await _post(harness, {"query": "{ __typename }"}, headers)).status_code == 200


def _contract_operations() -> list[tuple[str, dict[str, int]]]:
    """Each operation of the contract, with every Int variable (each is a page size) at 100."""
    operations = []
    for definition in parse(CONTRACT.read_text()).definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name:
            sizes = {
                v.variable.name.value: 100
                for v in definition.variable_definitions or ()
                if getattr(v.type, "name", None) and v.type.name.value == "Int"  # type: ignore[attr-defined]
            }
            operations.append((definition.name.value, sizes))
    return operations


# -- the cost ---------------------------------------------------------------------------------


def test_the_cost_counts_each_field_once_per_item_of_the_lists_above_it() -> None:
    # viewer, organization, usage, totalCount, edges; then node and id for each of 10.
    assert (
        _cost(
            "{ viewer { organization { usage(first: 10) { totalCount edges { node { id } } } } } }"
        )
        == 25
    )
    # A list without a page size counts at its bound: an API key has 3 windows.
    windows = "apiKeys(first: 2) { edges { node { windows { window } } } }"
    assert _cost(f"{{ viewer {{ organization {{ {windows} }} }} }}") == 4 + 2 * (2 + 3)
    # Without first, a connection counts at its default page size (50 for usage).
    assert _cost("{ viewer { organization { usage { edges { node { id } } } } } }") == 4 + 50 * 2


def test_a_page_size_counts_at_the_variables_value_or_the_default() -> None:
    query = (
        "query($n: Int = 7) { viewer { organization {"
        " usage(first: $n) { edges { node { id } } } } } }"
    )
    assert _cost(query, {"n": 3}) == 4 + 3 * 2
    assert _cost(query, {}) == 4 + 7 * 2
    # Past what the resolvers allow, it counts at their largest page (they refuse the rest).
    assert _cost(query, {"n": 10**9}) == 4 + 100 * 2


def test_fragments_count_as_if_written_out_and_a_repeated_spread_once() -> None:
    assert _cost(NESTED_IN_FRAGMENTS) == _cost(NESTED) > LIMIT
    twice = "{ viewer { ...Org ...Org organization { id } } }"
    twice += " fragment Org on Viewer { organization { id slug } }"
    assert _cost(twice) == _cost("{ viewer { organization { id slug } } }") == 4


def test_fragments_doubling_at_every_level_are_costed_without_expanding_them() -> None:
    # Introspection's types nest in themselves: 2 aliases a level, 12 levels, 2^12 paths.
    levels = 12
    fragments = [
        f"fragment T{i} on __Type {{ a{i}: fields {{ type {{ ...T{i + 1} }} }} "
        f"b{i}: fields {{ type {{ ...T{i + 1} }} }} }}"
        for i in range(levels)
    ]
    fragments.append(f"fragment T{levels} on __Type {{ name }}")
    query = '{ __type(name: "Query") { ...T0 } }\n' + "\n".join(fragments)
    fields = _introspection_sizes(schema._schema)[("__Type", "fields")]
    cost = 1  # each T12: its name
    for _ in range(levels):  # each level: two lists of fields, each field's type
        cost = 2 * (1 + fields * (1 + cost))
    assert _cost(query) == 1 + cost > LIMIT


def test_every_contract_operation_is_within_the_limit_at_first_100() -> None:
    document = parse(CONTRACT.read_text())
    sizes = list_sizes(Settings())
    operations = _contract_operations()
    assert len(operations) > 40
    for name, at_100 in operations:
        for variables in ({}, at_100):
            cost = operation_cost(schema._schema, document, name, variables, sizes)
            assert 0 < cost <= LIMIT, (name, variables, cost)
    # With any variables at all: so the dashboards' queries all stay on the fast path.
    assert worst_cost(schema._schema, document, sizes) <= LIMIT


@pytest.mark.parametrize("query", [NESTED, NESTED_IN_FRAGMENTS])
@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 400)])
async def test_nested_connections_at_first_100_are_refused_before_any_read(
    harness: Harness, query: str, accept: str, status: int
) -> None:
    org = await harness.org()
    await _signed_in(harness, harness.token(org, Role.OWNER))
    with harness.read_transactions() as reads:
        response = await _post(harness, {"query": query}, harness.token(org, Role.OWNER), accept)
    assert reads == []
    assert response.status_code == status
    body = response.json()
    assert body.get("data") is None
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    message = body["errors"][0]["message"]
    assert f"may cost {_cost(NESTED)}, more than the limit of {LIMIT}" in message
    await _served(harness, org)


async def test_a_page_size_given_by_a_variable_is_costed_at_its_value(harness: Harness) -> None:
    org = await harness.org()
    owner = harness.token(org, Role.OWNER)
    assert _cost(STATEMENTS, {"n": 1}) <= LIMIT < _cost(STATEMENTS, {"n": 100})
    # The same document each time: a small page runs, a large one is refused, every time.
    for _ in range(2):
        ran = await harness.graphql(STATEMENTS, headers=owner, n=1)
        assert "errors" not in ran
        assert len(ran["data"]["viewer"]["organization"]["statements"]["edges"]) == 1
        refused = await harness.graphql(STATEMENTS, headers=owner, n=100)
        assert refused["data"] is None
        assert _codes(refused) == ["GRAPHQL_VALIDATION_FAILED"]
        assert f"may cost {_cost(STATEMENTS, {'n': 100})}," in refused["errors"][0]["message"]
    # Within the limit at some variables only: never on the fast path, which costs nothing.
    assert DOCUMENTS.get(STATEMENTS) is None


async def test_introspection_counts_one_query_runs_two_at_once_are_refused(
    harness: Harness,
) -> None:
    org = await harness.org()
    introspection = get_introspection_query()
    fragments = introspection[introspection.index("fragment FullType") :]
    twice = "{ a: __schema { types { ...FullType } } b: __schema { types { ...FullType } } }"
    twice += fragments
    assert _cost(introspection) <= LIMIT < _cost(twice)
    body = (await _post(harness, {"query": introspection}, {})).json()
    assert "errors" not in body
    assert "Organization" in {t["name"] for t in body["data"]["__schema"]["types"]}
    refused = (await _post(harness, {"query": twice}, {})).json()
    assert refused["data"] is None
    assert _codes(refused) == ["GRAPHQL_VALIDATION_FAILED"]
    await _served(harness, org)


# -- the variables ------------------------------------------------------------------------------

RECORD_USAGE = """
mutation RecordUsage($input: RecordUsageInput!) {
  recordUsage(input: $input) { usage { id } userErrors { field message code } }
}
"""


async def test_a_huge_list_in_the_variables_is_refused_before_any_work(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    event = usage_event(key.id, "r1")
    event = {
        "requestId": event["request_id"],
        "apiKeyId": event["api_key_id"],
        "model": event["model"],
        "promptTokens": 1000,
        "completionTokens": 200,
        "tags": [{"key": "agent", "value": "a"}] * 50_000,
    }
    await _signed_in(harness, harness.token(org))
    with harness.read_transactions() as reads:
        response = await _post(
            harness, {"query": RECORD_USAGE, "variables": {"input": event}}, harness.token(org)
        )
    assert reads == []
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == (
        "variables.input.tags: the variables hold more than 1000 values (list items and "
        "object fields, nested ones included), more than they may"
    )
    assert await harness.balance(org) == (10_000_000, 0)  # nothing billed
    event["tags"] = [{"key": "agent", "value": "a"}]
    billed = await harness.graphql(RECORD_USAGE, headers=harness.token(org), input=event)
    assert billed["data"]["recordUsage"]["userErrors"] == []
    assert (await harness.balance(org))[0] < 10_000_000


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ids": list(range(100_000))}, "variables.ids: the variables hold more than 1000 values"),
        ({"deep": _nested(300)}, "nested more than 10 levels deep"),
        ({"a": {"b": _nested(11)}}, "variables.a.b.0.0.0.0.0.0.0.0.0: nested more than 10"),
    ],
)
async def test_large_or_deep_variables_are_refused_on_the_fast_path_too(
    harness: Harness, variables: dict[str, Any], message: str
) -> None:
    org = await harness.org()
    owner = harness.token(org, Role.OWNER)
    await _served(harness, org)  # admits the document: its next requests take the fast path
    assert DOCUMENTS.get(KEY_COUNT) is not None
    response = await _post(harness, {"query": KEY_COUNT, "variables": variables}, owner)
    body = response.json()
    assert body["data"] is None
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert message in body["errors"][0]["message"]
    await _served(harness, org)


def test_variables_within_the_limits_pass() -> None:
    settings = Settings()
    assert check_variables({"ids": list(range(999))}, settings) is None
    assert check_variables({"a": _nested(9)}, settings) is None
    assert check_variables(None, settings) is None


# -- batches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_batch_is_refused_as_not_supported(harness: Harness, accept: str) -> None:
    org = await harness.org()
    batch = [{"query": KEY_COUNT}, {"query": KEY_COUNT}]
    response = await _post(harness, batch, harness.token(org, Role.OWNER), accept)
    assert response.status_code == 400
    assert response.headers["content-type"] == accept
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert error["message"].startswith("batched requests (a JSON array) are not supported")
    await _served(harness, org)


# -- time ------------------------------------------------------------------------------------


@pytest.fixture
def instant_deadline(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A deadline that passes at a request's first wait (a database read); the settings
    as they were, to put back."""
    before = harness.runtime.settings
    monkeypatch.setattr(
        harness.runtime, "settings", before.model_copy(update={"graphql_timeout_seconds": 1e-6})
    )
    return before


@contextmanager
def _held_connections(harness: Harness) -> Iterator[Callable[[], int]]:
    """How many read connections taken meanwhile are not back in the pool (fewer than 0
    when one taken before, by the alert evaluations after a commit, comes back)."""
    counts = {"checkout": 0, "checkin": 0}

    def counter(name: str) -> Callable[..., None]:
        def count(*_args: object) -> None:
            counts[name] += 1

        return count

    engine = harness.runtime.db.read_engine
    listeners = [(name, counter(name)) for name in counts]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield lambda: counts["checkout"] - counts["checkin"]
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


async def _until_none_held(held: Callable[[], int]) -> None:
    # A read stopped in its thread (SQLite) ends there; nothing signals when.
    async with asyncio.timeout(WAIT):
        while held() > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_query_past_its_time_is_stopped_and_frees_its_connection(
    harness: Harness,
    instant_deadline: Settings,
    monkeypatch: pytest.MonkeyPatch,
    accept: str,
) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    await harness.usage(org, *(usage_event(key.id, f"r{n}") for n in range(100)))
    owner = harness.token(org, Role.OWNER)
    # Twice: the first runs through Strawberry, the second on the fast path.
    for _ in range(2):
        with _held_connections(harness) as held:
            response = await _post(harness, {"query": USAGE_PAGE}, owner, accept)
            await _until_none_held(held)
        assert response.status_code == 200
        assert response.headers["content-type"] == accept
        body = response.json()
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "TIMEOUT"}
        assert error["message"].startswith("the query ran longer than 1e-06 s and was stopped")
    assert DOCUMENTS.get(USAGE_PAGE) is not None

    # A mutation is not stopped: its write is done, and it says so.
    created = await harness.graphql(
        'mutation { createApiKey(input: {name: "in time"}) '
        "{ apiKey { name } userErrors { code } } }",
        headers=owner,
    )
    assert created["data"]["createApiKey"] == {"apiKey": {"name": "in time"}, "userErrors": []}

    monkeypatch.setattr(harness.runtime, "settings", instant_deadline)
    page = await harness.graphql(USAGE_PAGE, headers=owner)
    usage = page["data"]["viewer"]["organization"]["usage"]
    assert usage["totalCount"] == 100
    assert len(usage["edges"]) == 100
