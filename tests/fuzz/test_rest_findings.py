"""What fuzzing the REST API against its OpenAPI document found, each kept as a request
over HTTP: a clean 4xx naming the field, never a 5xx, and the answer the document gives."""

from __future__ import annotations

import httpx
import pytest

from app.auth import Role
from tests.conftest import Harness


def _invalid(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_input"
    assert fragment in body["message"]


@pytest.mark.parametrize("path", ["/api/v1/me/billing/transactions", "/api/v1/me/ledger.csv"])
async def test_an_enum_parameter_takes_the_two_spellings_the_document_lists(
    harness: Harness, path: str
) -> None:
    owner = harness.token(await harness.org("acme"), Role.OWNER)
    for spelt in ("refund", "REFUND"):
        assert (
            await harness.http.get(path, params={"kind": spelt}, headers=owner)
        ).status_code == 200
    _invalid(await harness.http.get(path, params={"kind": "Refund"}, headers=owner), "kind:")
