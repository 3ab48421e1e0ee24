"""The OpenAPI document: valid OpenAPI 3.1, served without credentials, and describing
exactly the routes the app serves (but GraphQL's, which has its own schema)."""

from __future__ import annotations

import schemathesis
from starlette.routing import Route

from app.api.rest.openapi import PATH, document
from app.main import create_app
from app.settings import Settings
from tests.conftest import Harness


def _served(settings: Settings) -> set[tuple[str, str]]:
    return {
        (route.path, method.lower())
        for route in create_app(settings).routes
        if isinstance(route, Route) and route.path != "/graphql"
        for method in (route.methods or set()) - {"HEAD"}
    }


def test_every_route_is_described_and_only_those(settings: Settings) -> None:
    described = {
        (path, method) for path, item in document(settings)["paths"].items() for method in item
    }
    assert described == _served(settings)
    # The console's pages are not API: served only with it on, and not described.
    console = settings.model_copy(update={"console": True})
    assert _served(console) - described == {("/", "get")}


async def test_the_document_is_public_and_valid_openapi(harness: Harness) -> None:
    response = await harness.http.get(PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == document(harness.runtime.settings)
    assert served["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(served).validate()
    # The configured limits are the ones described.
    batch = served["components"]["schemas"]["UsageBatch"]["properties"]["events"]
    assert batch["maxItems"] == harness.runtime.settings.usage_batch_max
