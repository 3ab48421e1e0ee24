"""GraphQL over HTTP: media types and status codes, CSRF, the size limit, the query
limits and error codes, masking. Nothing a client sends is ever answered with a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.auth import Role
from app.clock import Clock
from app.graphql import schema as schema_module
from app.graphql.http import GRAPHQL_RESPONSE, JSON, response_media_type
from app.graphql.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app

TYPENAME = {"query": "{ __typename }"}
CREATE_KEY = 'mutation { createApiKey(input: {name: "csrf"}) { apiKey { id } } }'
KEY_COUNT = "{ viewer { organization { apiKeys { totalCount } } } }"


async def _post(
    harness: Harness, body: dict[str, Any], accept: str = JSON, **headers: str
) -> httpx.Response:
    return await harness.http.post("/graphql", json=body, headers={"Accept": accept} | headers)


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


async def _key_count(harness: Harness, org: OrgRef) -> int:
    body = await harness.graphql(KEY_COUNT, headers=harness.token(org, Role.OWNER))
    count: int = body["data"]["viewer"]["organization"]["apiKeys"]["totalCount"]
    return count


# -- media types and status codes ------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("text/html", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{JSON};q=0.9, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        ("application/*;q=0.8, application/graphql-response+JSON", GRAPHQL_RESPONSE),
    ],
)
def test_the_response_media_type_follows_accept(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_query_answers_200_in_the_media_type_asked_for(
    harness: Harness, accept: str
) -> None:
    response = await _post(harness, TYPENAME, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == accept
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nosuchfield }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_a_request_that_cannot_run_is_400_without_data_for_graphql_response_json(
    harness: Harness, query: str, code: str
) -> None:
    response = await _post(harness, {"query": query}, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    assert _codes(body) == [code]


@pytest.mark.parametrize("query", ["{", "{ nosuchfield }"])
async def test_legacy_json_clients_get_200_with_errors(harness: Harness, query: str) -> None:
    response = await _post(harness, {"query": query}, JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert body["data"] is None
    assert body["errors"]


async def test_a_field_error_is_200_with_data_in_either_media_type(harness: Harness) -> None:
    for accept in (JSON, GRAPHQL_RESPONSE):
        response = await _post(harness, {"query": "{ viewer { id } }"}, accept)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None  # viewer is non-null: its error nulls the whole data
        assert _codes(body) == ["UNAUTHENTICATED"]


async def test_typename_needs_no_token(harness: Harness) -> None:
    # It says nothing about anyone; the spec's audits and health checks use it.
    assert (await harness.graphql("{ __typename }")) == {"data": {"__typename": "Query"}}


# -- CSRF: only JSON is read, and GET never mutates ---------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_a_post_a_browser_sends_without_preflight_is_refused(
    harness: Harness, content_type: str | None
) -> None:
    org = await harness.org()
    # A custom header, even the token, does not make such a body acceptable: only JSON is.
    headers = harness.token(org, Role.OWNER) | {"X-Requested-With": "XMLHttpRequest"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps({"query": CREATE_KEY})
    response = await harness.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 415
    assert _codes(response.json()) == ["BAD_REQUEST"]
    assert await _key_count(harness, org) == 0


async def test_a_get_runs_queries_but_never_a_mutation(harness: Harness) -> None:
    org = await harness.org()
    headers = harness.token(org, Role.OWNER)
    query = await harness.http.get("/graphql", params={"query": KEY_COUNT}, headers=headers)
    assert query.status_code == 200
    assert query.json()["data"]["viewer"]["organization"]["apiKeys"]["totalCount"] == 0

    mutation = await harness.http.get("/graphql", params={"query": CREATE_KEY}, headers=headers)
    assert mutation.status_code == 405
    assert mutation.headers["allow"] == "POST"
    assert _codes(mutation.json()) == ["BAD_REQUEST"]
    assert await _key_count(harness, org) == 0


# -- bodies: the size limit, and malformed ones ---------------------------------------------


@pytest.fixture
def small_bodies(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> int:
    limit = 64
    settings = harness.runtime.settings.model_copy(update={"max_body_bytes": limit})
    monkeypatch.setattr(harness.runtime, "settings", settings)
    return limit


def _padded(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes."""
    head = b'{"query": "{ __typename }", "extensions": {"pad": "'
    return head + b"x" * (size - len(head) - 3) + b'"}}'


async def test_a_body_at_the_limit_runs(harness: Harness, small_bodies: int) -> None:
    response = await harness.http.post(
        "/graphql", content=_padded(small_bodies), headers={"Content-Type": JSON}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_body_past_the_limit_is_413(harness: Harness, small_bodies: int) -> None:
    response = await harness.http.post(
        "/graphql", content=_padded(small_bodies + 1), headers={"Content-Type": JSON}
    )
    assert response.status_code == 413
    assert _codes(response.json()) == ["BAD_REQUEST"]


async def test_a_streamed_body_past_the_limit_is_413(harness: Harness, small_bodies: int) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = _padded(small_bodies + 1)
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    # No Content-Length: the limit holds as the body arrives.
    response = await harness.http.post("/graphql", content=chunks(), headers={"Content-Type": JSON})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_a_declared_length_past_the_limit_is_413_before_the_body(
    harness: Harness, small_bodies: int
) -> None:
    headers = {"Content-Type": JSON, "Content-Length": str(small_bodies + 1)}
    request = harness.http.build_request("POST", "/graphql", content=b"{}", headers=headers)
    response = await harness.http.send(request)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{ "not a JSON',
        b'{"query": "\xff"}',  # not UTF-8
        b"null",
        b'"{ __typename }"',
        b"42",
        b'[{"query": "{ __typename }"}]',  # batches are off
        b'{"query": 42}',
        b'{"query": "{ __typename }", "variables": []}',
        b'{"variables": {}}',
    ],
)
@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_a_malformed_request_is_400_with_a_graphql_error(
    harness: Harness, body: bytes, accept: str
) -> None:
    headers = {"Content-Type": JSON, "Accept": accept}
    response = await harness.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == accept
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"]


# -- limits and error codes -----------------------------------------------------------------


async def test_a_query_past_the_depth_limit_fails_validation(harness: Harness) -> None:
    # Introspection does not count towards depth, so the nesting is of (unknown) fields;
    # the depth error comes along with theirs.
    nested = "{ viewer " + "{ organization " * MAX_DEPTH + "{ id" + " }" * (MAX_DEPTH + 2)
    body = await harness.graphql(nested)
    assert body["data"] is None
    assert set(_codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
    messages = [e["message"] for e in body["errors"]]
    assert f"'anonymous' exceeds maximum operation depth of {MAX_DEPTH}" in messages


async def test_a_query_with_too_many_aliases_fails_validation(harness: Harness) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1))
    body = await harness.graphql(f"{{ {aliases} }}")
    assert body["data"] is None
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert (
        body["errors"][0]["message"] == f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"
    )


async def test_a_query_with_too_many_tokens_fails_to_parse(harness: Harness) -> None:
    body = await harness.graphql("{ " + "__typename " * MAX_TOKENS + "}")
    assert body["data"] is None
    assert _codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert f"more than {MAX_TOKENS} tokens" in body["errors"][0]["message"]


async def test_variables_of_the_wrong_type_are_bad_user_input(harness: Harness) -> None:
    body = await harness.graphql("query($id: ID!) { node(id: $id) { id } }", id=None)
    assert body["data"] is None
    assert _codes(body) == ["BAD_USER_INPUT"]


async def test_a_fault_in_a_resolver_is_masked(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("connection to db-internal-7:5432 refused")

    monkeypatch.setattr(schema_module, "resolve_node", broken)
    org = await harness.org()
    response = await _post(harness, {"query": '{ node(id: "x") { id } }'}, **harness.token(org))
    assert response.status_code == 200
    assert "db-internal" not in response.text
    body = response.json()
    assert body["data"] == {"node": None}
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["node"]


async def test_an_expected_error_is_not_masked(harness: Harness) -> None:
    body = await harness.graphql("{ viewer { id } }")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "Authorization: Bearer" in error["message"]


async def test_each_caller_is_rate_limited_on_its_own(settings: Settings, clock: Clock) -> None:
    limited = settings.model_copy(update={"graphql_rate_per_second": 0.01, "graphql_burst": 2})
    async with running_app(limited, clock) as app:
        first = {"Authorization": "Bearer first"}
        query = {"query": "{ __typename }"}
        for _ in range(2):
            assert (await app.http.post("/graphql", json=query, headers=first)).status_code == 200
        refused = await app.http.post("/graphql", json=query, headers=first)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        other = {"Authorization": "Bearer second"}
        assert (await app.http.post("/graphql", json=query, headers=other)).status_code == 200
