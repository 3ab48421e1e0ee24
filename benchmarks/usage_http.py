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
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import ROOT, Fixture, median, prepare, verify

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

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,'
    .. '"status_errors":%d,"socket_errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Result:
    server: str
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    target: str, port: int, env: dict[str, str], factory: bool
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--log-level", "warning"]
    if factory:
        command.append("--factory")
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{target} exited with {process.returncode}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{target} did not come up on port {port}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def drive(
    name: str, port: int, fixture: Fixture, connections: int, duration: float, workdir: Path
) -> Result:
    tag = f"{name}-{uuid.uuid4().hex[:12]}"
    url = f"http://127.0.0.1:{port}"
    wrk = shutil.which("wrk")
    if wrk is not None:
        script = workdir / f"{tag}.lua"
        script.write_text(
            WRK_SCRIPT.format(
                tag=tag, api_key_id=fixture.api_key_global_id, token=fixture.service_token
            )
        )
        threads = min(2, connections)
        command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s"]
        command += ["-s", str(script), url]
    else:
        command = [sys.executable, "-m", "benchmarks.httpx_load", "--url", url]
        command += ["--token", fixture.service_token, "--api-key-id", fixture.api_key_global_id]
        command += ["--tag", tag, "--connections", str(connections)]
        command += ["--duration", str(duration)]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("LOADJSON "))
    data = json.loads(line.removeprefix("LOADJSON "))
    return Result(
        name,
        data["requests"],
        data["duration_us"] / 1e6,
        data["p50_us"] / 1000,
        data["p95_us"] / 1000,
        data["p99_us"] / 1000,
        data["status_errors"] + data["socket_errors"],
    )


def describe(result: Result) -> str:
    return (
        f"{result.server:<12} {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p95 {result.p95_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"({result.requests} requests, {result.errors} errors)"
    )


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
    summary: dict[str, tuple[float, float, float]] = {}
    for name, runs in results.items():
        summary[name] = (
            median([r.rps for r in runs]),
            median([r.p50_ms for r in runs]),
            median([r.p95_ms for r in runs]),
        )
        rps, p50, p95 = summary[name]
        print(f"{name:<12} {rps:9.1f} req/s  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    ratio = summary["creditgraph"][0] / summary["bare"][0]
    print(f"ratio creditgraph/bare: {ratio:.2f}x (target >= 0.5x)")

    with sqlite3.connect(db_path) as conn:
        (records,) = conn.execute("SELECT count(*) FROM usage_records").fetchone()
        (entries,) = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
    print(f"usage_records {records}, ledger_entries {entries}")
    ok = verify(db_path)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
