"""The request body limit (max_body_bytes, 2 MiB) at its boundary, on /graphql and on the
gateway's /api/v1/usage, and a chunked body trickling past it over a real socket: each
refused with a 413 that says the limit, and the next request served as usual."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.auth import Role
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, usage_event

LIMIT = Settings().max_body_bytes
TOO_LARGE = f"the request body is larger than {LIMIT} bytes"
KEY_COUNT = "{ viewer { organization { apiKeys { totalCount } } } }"
# Only to notice a hang; never a bound on how fast anything is.
WAIT = 10


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes (whitespace after it)."""
    encoded = json.dumps(body).encode()
    return encoded + b" " * (size - len(encoded))


def _graphql(harness: Harness, org: OrgRef) -> tuple[dict[str, Any], dict[str, str]]:
    headers = {"Content-Type": "application/json"} | harness.token(org, Role.OWNER)
    return {"query": KEY_COUNT}, headers


def _usage(harness: Harness, org: OrgRef, key_id: int) -> tuple[dict[str, Any], dict[str, str]]:
    headers = {"Content-Type": "application/json"} | harness.token(org)
    return {"events": [usage_event(key_id, "r1")]}, headers


@pytest.mark.parametrize("path", ["/graphql", "/api/v1/usage"])
async def test_a_body_of_the_limit_runs_one_byte_more_is_413(harness: Harness, path: str) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    body, headers = _graphql(harness, org) if path == "/graphql" else _usage(harness, org, key.id)
    refused = await harness.http.post(path, content=_padded(body, LIMIT + 1), headers=headers)
    assert refused.status_code == 413
    answer = refused.json()
    if path == "/graphql":
        assert answer["errors"] == [{"message": TOO_LARGE, "extensions": {"code": "BAD_REQUEST"}}]
    else:
        assert (answer["code"], answer["message"]) == ("request_entity_too_large", TOO_LARGE)
    assert await harness.balance(org) == (1_000_000, 0)

    ran = await harness.http.post(path, content=_padded(body, LIMIT), headers=headers)
    assert ran.status_code == 200
    if path == "/graphql":
        assert ran.json() == {"data": {"viewer": {"organization": {"apiKeys": {"totalCount": 1}}}}}
    else:
        assert ran.json()["results"][0]["outcome"] == "billed"
        assert await harness.balance(org) == (1_000_000 - 6_000, 0)


async def _status_line(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    return head.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("path", ["/graphql", "/api/v1/usage"])
async def test_a_chunked_body_trickling_past_the_limit_is_cut_off_there(
    server: Harness, path: str
) -> None:
    org = await server.org(grant_usd="1")
    key = await server.key(org)
    body, headers = _graphql(server, org) if path == "/graphql" else _usage(server, org, key.id)
    port = server.http.base_url.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    # The start of a valid body, then padding in small chunks, one at a time, past the
    # limit; the last chunk never comes, so only a limit enforced as it arrives answers.
    encoded = json.dumps(body).encode()
    chunks = [encoded] + [b" " * 64 * 1024] * (LIMIT // (64 * 1024))
    assert sum(map(len, chunks)) > LIMIT
    for chunk in chunks:
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
    assert await _status_line(reader) == b"HTTP/1.1 413 Request Entity Too Large"
    writer.close()

    # The server goes on serving, this caller too.
    served = await server.http.post(path, json=body, headers=headers)
    assert served.status_code == 200
