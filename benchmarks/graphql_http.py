"""GraphQL benchmark: the dashboards' Viewer and WalletOverview queries on creditgraph
versus a bare Starlette JSON endpoint answering the same documents.

The servers run as uvicorn subprocesses (one worker each): the bare app, creditgraph as
it ships, and creditgraph with its response cache off (``CREDITGRAPH_GRAPHQL_CACHE_SECONDS
=0``), which reads and executes every request. wrk drives each operation with a viewer's
JWT, runs alternate bare, creditgraph, uncached, ... and the medians are reported. With
no writes during a run, creditgraph answers all but the first request of every few
seconds from its cache; the uncached figure is what a request costs when a write has
just made the answer stale.
WalletOverview is the full contract operation, its text (with the ``Money`` fragment)
taken from frontend-examples/operations/dashboard.graphql: wallet, balance, purchases,
lots, plan, auto-reload, spend cap and unlock tier. The benchmark organization is put
on the ``bytez-payg`` plan first (the development fake provider counts it paid), so
``subscription`` and ``entitlement`` are answered, not null.

With ``--usage-per-second N``, a thread bills the benchmark organization N calls a
second through ``POST /api/v1/usage`` on the server being measured, as a busy gateway
would: every batch the writer commits makes the organization's cached answers stale.

    .venv/bin/python -m benchmarks.graphql_http --connections 64 --duration 10 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from graphql import FragmentDefinitionNode, Node, OperationDefinitionNode, parse

from app.auth import Role, issue_token
from app.runtime import Runtime
from benchmarks.common import JWT_SECRET, METERED, MODEL, ORG_SLUG, ROOT, Fixture, prepare
from benchmarks.load import (
    WRK_DONE,
    Result,
    describe,
    free_port,
    print_medians,
    run,
    start_server,
    stop_server,
    wrk_command,
)

CONTRACT = ROOT / "frontend-examples" / "operations" / "dashboard.graphql"
PLAN = "bytez-payg"


def contract_operation(name: str) -> str:
    """Operation ``name`` of the contract file, verbatim, followed by the fragments it
    spreads (verbatim too): what a dashboard sends for it."""
    source = CONTRACT.read_text()
    document = parse(source)
    definitions = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
        and definition.name is not None
    }
    texts = {name: _text(source, definitions[name])}
    pending = [name]
    while pending:  # the fragments spread, and those they spread in turn
        for spread in re.findall(r"\.\.\.\s*([_A-Za-z]\w*)", texts[pending.pop()]):
            if spread != "on" and spread not in texts:
                texts[spread] = _text(source, definitions[spread])
                pending.append(spread)
    return "\n\n".join(texts.values())


def _text(source: str, node: Node) -> str:
    assert node.loc is not None
    return source[node.loc.start : node.loc.end]


OPERATIONS = {
    "Viewer": (
        "query Viewer { viewer { id role organization { id slug name } } }",
        0.4,
    ),
    "WalletOverview": (contract_operation("WalletOverview"), 0.2),
}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.body = [[{body}]]
"""


def _shape(value: object) -> object:
    """The keys of a JSON document, recursively: what both servers must agree on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return None


class UsagePoster:
    """Bills the benchmark call to the organization ``rate`` times a second, in a thread,
    on the server at ``port`` while the block runs; ``posted`` counts the calls billed."""

    def __init__(self, fixture: Fixture, port: int, rate: float) -> None:
        self.fixture, self.url, self.rate = fixture, f"http://127.0.0.1:{port}/api/v1/usage", rate
        self.posted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._post, daemon=True)

    def __enter__(self) -> UsagePoster:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _post(self) -> None:
        headers = {"Authorization": f"Bearer {self.fixture.service_token}"}
        started = time.monotonic()
        with httpx.Client(headers=headers) as client:
            while not self._stop.is_set():
                event = {
                    "request_id": f"graphql-bench-{uuid.uuid4().hex}",
                    "api_key_id": self.fixture.api_key_global_id,
                    "model": MODEL,
                    "prompt_tokens": METERED.prompt_tokens,
                    "completion_tokens": METERED.completion_tokens,
                }
                response = client.post(self.url, json={"events": [event]})
                (result,) = response.raise_for_status().json()["results"]
                if result["outcome"] != "billed":
                    raise RuntimeError(f"usage not billed: {result}")
                self.posted += 1
                # Paced from the start, so a slow post is caught up rather than lost.
                self._stop.wait(max(0.0, started + self.posted / self.rate - time.monotonic()))


def check(name: str, query: str, token: str, bare_port: int, cg_port: int) -> None:
    """Both servers answer the operation with documents of the same shape, without errors."""
    answers = []
    for port in (bare_port, cg_port):
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": query, "operationName": name},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        if response.status_code != 200 or "errors" in body:
            sys.exit(f"{name} on port {port}: {response.status_code} {body}")
        answers.append(_shape(body))
    if answers[0] != answers[1]:
        sys.exit(f"{name}: the servers' answers differ in shape: {answers}")


async def put_on_plan(fixture: Fixture) -> None:
    """The benchmark organization on a plan, so WalletOverview's plan fields are set."""
    runtime = await Runtime.start(fixture.settings)
    try:
        await runtime.subscriptions.change(fixture.organization_id, PLAN)
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="bare+creditgraph pairs")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument(
        "--usage-per-second",
        type=float,
        default=0.0,
        help="usage calls billed to the organization a second during creditgraph's runs",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed: apt-get install -y wrk")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-graphql-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fixture = asyncio.run(prepare(workdir / "creditgraph.db"))
    asyncio.run(put_on_plan(fixture))
    token = issue_token(
        JWT_SECRET, org=ORG_SLUG, role=Role.VIEWER, subject="bench", ttl=timedelta(hours=6)
    )
    scripts = {}
    for name, (query, _target) in OPERATIONS.items():
        body = json.dumps({"query": query, "operationName": name})
        scripts[name] = workdir / f"{name}.lua"
        script = WRK_SCRIPT.replace("{token}", token).replace("{body}", body)
        scripts[name].write_text(script + WRK_DONE.format())  # WRK_DONE is a template

    ports = {"bare": free_port(), "creditgraph": free_port(), "uncached": free_port()}
    uncached_env = fixture.env | {"CREDITGRAPH_GRAPHQL_CACHE_SECONDS": "0"}
    servers = []
    try:
        servers.append(
            start_server("benchmarks.bare_app:app", ports["bare"], fixture.env, factory=False)
        )
        for server, env in (("creditgraph", fixture.env), ("uncached", uncached_env)):
            servers.append(start_server("app.main:create_app", ports[server], env, factory=True))
    except Exception:
        for process in servers:
            stop_server(process)
        raise
    ok = True
    try:
        for name, (query, target) in OPERATIONS.items():
            for server in ("creditgraph", "uncached"):
                check(name, query, token, ports["bare"], ports[server])
            results: dict[str, list[Result]] = {server: [] for server in ports}
            print(f"\n{name}: {args.connections} connections, {args.duration:g} s per run")
            for server, port in ports.items():  # warm-up
                run(
                    wrk_command(
                        wrk,
                        f"http://127.0.0.1:{port}/graphql",
                        str(scripts[name]),
                        args.connections,
                        2,
                    ),
                    server,
                )
            for _ in range(args.rounds):
                for server, port in ports.items():
                    url = f"http://127.0.0.1:{port}/graphql"
                    command = wrk_command(
                        wrk, url, str(scripts[name]), args.connections, args.duration
                    )
                    rate = 0.0 if server == "bare" else args.usage_per_second
                    with contextlib.ExitStack() as stack:
                        if rate:
                            poster = stack.enter_context(UsagePoster(fixture, port, rate))
                        result = run(command, server)
                    results[server].append(result)
                    billed = f", {poster.posted} usage calls billed meanwhile" if rate else ""
                    print(describe(result) + billed, flush=True)
                    ok = ok and result.errors == 0
            rates = print_medians(results)
            ratio = rates["creditgraph"] / rates["bare"]
            print(f"ratio creditgraph/bare: {ratio:.2f}x (target >= {target}x)")
            print(f"ratio uncached/bare: {rates['uncached'] / rates['bare']:.3f}x")
    finally:
        for process in servers:
            stop_server(process)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
