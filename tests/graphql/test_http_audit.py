"""graphql-http's audit of the GraphQL over HTTP spec, in Node, against a real server."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.conftest import Harness

AUDIT = Path(__file__).parents[1] / "graphql_http_audit"
# Only to notice a hang; the audit takes about a second.
WAIT = 120


async def test_every_graphql_over_http_audit_passes(server: Harness) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("the graphql-http audit needs Node.js (18 or later) on PATH")
    if not (AUDIT / "node_modules" / "graphql-http").is_dir():
        pytest.skip("the graphql-http audit needs `npm ci --prefix tests/graphql_http_audit`")
    url = str(server.http.base_url.copy_with(path="/graphql"))
    # Async, as the server answering it runs on this event loop.
    process = await asyncio.create_subprocess_exec(
        node,
        str(AUDIT / "audit.mjs"),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(WAIT):
        output, _ = await process.communicate()
    report = output.decode()
    assert process.returncode == 0, report
    results = [line for line in report.splitlines() if not line.endswith("audits passed")]
    assert results
    assert all(line.startswith("ok ") for line in results), report
