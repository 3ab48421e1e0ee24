"""The gateway's calls through ``creditgraph serve`` versus a bare Starlette app.

Three loads, each a wrk script giving every request a new request id:

- ``usage``: ``POST /api/v1/usage`` with one event (the call after a model call);
- ``authorize``: ``POST /api/v1/authorize`` holding $0.05 (the call before one);
- ``pair``: what a gateway sends for each call, authorize then usage for the same
  request id: requests alternate, and each usage settles the hold of an authorization
  sent ``PAIR_LAG`` pairs earlier (its answer is back by then: a model call sits
  between the two in real traffic).

The key has a lifetime quota and a one-day window (``common.KEY_CAPS``), so authorize
checks both. Runs alternate between the servers (bare, creditgraph[, before], ...) and
the medians are reported, with the server's CPU time per request. With ``--before
TREE`` a second creditgraph is served from another source tree (a worktree of an
earlier commit), on its own copy of the database: before and after in one run.
Each creditgraph database must pass ``creditgraph verify`` afterwards.

    .venv/bin/python -m benchmarks.gateway                       # 32 connections, 6 s, 3 rounds
    .venv/bin/python -m benchmarks.gateway --loads usage --before /tmp/cg-before
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import MODEL, Fixture, copy_database, env_for, prepare, verify
from benchmarks.load import (
    CONNECTIONS,
    DURATION,
    Medians,
    Result,
    Server,
    alternate,
    lua_string,
    machine,
    print_changed,
    serve_bare,
    serve_creditgraph,
    wrk,
)

PAIR_LAG = 64  # pairs between an authorization and the usage that settles its hold
HOLD_USD = "0.05"

_HEADERS = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. {token}
local tag, key, secret, model = {tag}, {key}, {secret}, {model}
local n = 0
local function usage(id)
  return wrk.format(nil, "/api/v1/usage", nil, string.format(
    '{{"events":[{{"request_id":"%s","api_key_id":"%s","model":"%s",'
    .. '"prompt_tokens":1000,"completion_tokens":200,"status":"succeeded"}}]}}',
    id, key, model))
end
local function authorize(id)
  return wrk.format(nil, "/api/v1/authorize", nil, string.format(
    '{{"api_key":"%s","model":"%s","request_id":"%s","hold_usd":"{hold}"}}',
    secret, model, id))
end
"""

LOADS = {
    "usage": """
function request()
  n = n + 1
  return usage(tag .. "-" .. n)
end
""",
    "authorize": """
function request()
  n = n + 1
  return authorize(tag .. "-" .. n)
end
""",
    "pair": f"""
function request()
  n = n + 1
  local pair = math.floor((n + 1) / 2)
  if n % 2 == 1 then
    return authorize(tag .. "-" .. pair)
  end
  if pair > {PAIR_LAG} then
    return usage(tag .. "-" .. (pair - {PAIR_LAG}))
  end
  return usage(tag .. "-unheld-" .. pair)
end
""",
}
# Each load's target: creditgraph's requests/s over bare's, and its p99 at most.
TARGETS = {"usage": 0.5, "authorize": 0.5, "pair": 0.25}
TARGET_P99_MS = 20.0


def script(load: str, fixture: Fixture) -> str:
    values = {
        "token": fixture.service_token,
        "tag": f"{load}-{uuid.uuid4().hex[:12]}",
        "key": fixture.api_key_global_id,
        "secret": fixture.api_key_secret,
        "model": MODEL,
    }
    header = _HEADERS.replace("{hold}", HOLD_USD)
    for name, value in values.items():
        header = header.replace("{" + name + "}", lua_string(value))
    return header.replace("{{", "{").replace("}}", "}") + LOADS[load]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", nargs="+", choices=list(LOADS), default=list(LOADS))
    parser.add_argument("--connections", "-c", type=int, default=CONNECTIONS)
    parser.add_argument("--duration", "-d", type=float, default=DURATION)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="also serve creditgraph from this tree")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-gateway-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "creditgraph.db"
    for stale in workdir.glob("*.db*"):
        stale.unlink()
    fixture = asyncio.run(prepare(db_path))
    databases = {"creditgraph": db_path}
    if args.before is not None:
        databases["before"] = workdir / "before.db"
        copy_database(db_path, databases["before"])
    print(machine())
    print_changed()
    print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.rounds} rounds")

    servers: list[Server] = []
    try:
        servers.append(serve_bare(fixture.env, workdir))
        for name, path in databases.items():
            tree = args.before if name == "before" else None
            servers.append(serve_creditgraph(name, env_for(path), workdir, tree=tree))
        figures: dict[str, dict[str, Medians]] = {}
        for load in args.loads:
            print(f"\n{load}:")
            for server in servers:  # warm-up
                wrk(server, script(load, fixture), connections=args.connections, duration=2)

            def drive(server: Server, load: str = load) -> Result:
                text = script(load, fixture)  # new request ids every run
                return wrk(server, text, connections=args.connections, duration=args.duration)

            figures[load] = alternate(servers, drive, args.rounds)
    finally:
        for server in servers:
            server.stop()

    ok = report(figures)
    for path in databases.values():
        with sqlite3.connect(path) as conn:
            (records,) = conn.execute("SELECT count(*) FROM usage_records").fetchone()
            (holds,) = conn.execute("SELECT count(*) FROM holds").fetchone()
        print(f"{path.name}: {records} usage records, {holds} holds")
        ok = verify(path) and ok
    sys.exit(0 if ok else 1)


def report(figures: dict[str, dict[str, Medians]]) -> bool:
    """Print the medians and ratios; whether every run was free of errors."""
    print("\nmedians (requests/s, p50 / p99 ms, server CPU per request):")
    ok = True
    for load, by_server in figures.items():
        bare = by_server["bare"].rps
        for name, m in by_server.items():
            ratio = "" if name == "bare" else f"  {m.rps / bare:.2f}x bare"
            print(
                f"  {load:<10} {name:<12} {m.rps:8.0f} req/s  p50 {m.p50_ms:6.2f}  "
                f"p99 {m.p99_ms:6.2f} ms  {m.cpu_us:5.0f} us/req  {m.errors} errors{ratio}"
            )
            ok = ok and m.errors == 0
        cg = by_server["creditgraph"]
        met = cg.rps / bare >= TARGETS[load] and cg.p99_ms < TARGET_P99_MS
        print(
            f"  {load:<10} target >= {TARGETS[load]}x bare and p99 < {TARGET_P99_MS:g} ms: "
            f"{cg.rps / bare:.2f}x, {cg.p99_ms:.1f} ms: {'met' if met else 'NOT MET'}"
        )
    return ok


if __name__ == "__main__":
    main()
