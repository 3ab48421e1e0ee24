"""HTTP benchmark: single-event POST /api/v1/usage on creditgraph versus a bare Starlette app.

Both servers run as uvicorn subprocesses (one worker, log level warning). The load
generator (``wrk`` with a Lua script giving every request a unique request id, or the
httpx fallback in ``httpx_load.py``) runs in its own process. Runs alternate
bare, creditgraph, bare, creditgraph, ... and the medians are reported.

    .venv/bin/python -m benchmarks.usage_http --connections 64 --duration 10 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import Fixture, prepare, verify
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

WRK_SCRIPT = """
local tag = "{tag}"
local key = "{api_key_id}"
local counter = 0
local threads = {{}}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{{"events":[{{"request_id":"%s-%d-%d","api_key_id":"%s","model":"claude-sonnet-4-6",'
    .. '"prompt_tokens":1000,"completion_tokens":200,"status":"succeeded"}}]}}',
    tag, tid, counter, key)
  return wrk.format(nil, "/api/v1/usage", nil, body)
end
"""


def drive(
    name: str, port: int, fixture: Fixture, connections: int, duration: float, workdir: Path
) -> Result:
    tag = f"{name}-{uuid.uuid4().hex[:12]}"
    url = f"http://127.0.0.1:{port}"
    wrk = shutil.which("wrk")
    if wrk is not None:
        script = workdir / f"{tag}.lua"
        script.write_text(
            (WRK_SCRIPT + WRK_DONE).format(
                tag=tag, api_key_id=fixture.api_key_global_id, token=fixture.service_token
            )
        )
        command = wrk_command(wrk, url, str(script), connections, duration)
    else:
        command = [sys.executable, "-m", "benchmarks.httpx_load", "--url", url]
        command += ["--token", fixture.service_token, "--api-key-id", fixture.api_key_global_id]
        command += ["--tag", tag, "--connections", str(connections)]
        command += ["--duration", str(duration)]
    return run(command, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="bare+creditgraph pairs")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-bench-http-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "creditgraph.db"
    fixture = asyncio.run(prepare(db_path))
    loader = "wrk" if shutil.which("wrk") else "httpx (wrk not found)"
    print(f"database {db_path}; load generator {loader}")
    print(f"{args.connections} connections, {args.duration:g} s per run, {args.rounds} rounds")

    bare_port, cg_port = free_port(), free_port()
    bare = start_server("benchmarks.bare_app:app", bare_port, fixture.env, factory=False)
    try:
        cg = start_server("app.main:create_app", cg_port, fixture.env, factory=True)
    except Exception:
        stop_server(bare)
        raise
    results: dict[str, list[Result]] = {"bare": [], "creditgraph": []}
    try:
        for name, port in (("bare", bare_port), ("creditgraph", cg_port)):
            drive(f"warmup-{name}", port, fixture, args.connections, 2, workdir)
        for _ in range(args.rounds):
            for name, port in (("bare", bare_port), ("creditgraph", cg_port)):
                result = drive(name, port, fixture, args.connections, args.duration, workdir)
                results[name].append(result)
                print(describe(result), flush=True)
    finally:
        stop_server(cg)
        stop_server(bare)

    print("\nmedians of the alternating runs:")
    rates = print_medians(results)
    print(f"ratio creditgraph/bare: {rates['creditgraph'] / rates['bare']:.2f}x (target >= 0.5x)")

    with sqlite3.connect(db_path) as conn:
        (records,) = conn.execute("SELECT count(*) FROM usage_records").fetchone()
        (entries,) = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
    print(f"usage_records {records}, ledger_entries {entries}")
    ok = verify(db_path)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
