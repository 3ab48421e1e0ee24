"""Load-test plumbing shared by the HTTP benchmarks: servers, wrk, results, medians."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from benchmarks.common import ROOT, median

# Appended to every wrk script: prints one LOADJSON line the benchmarks parse. Braces
# are doubled because scripts are str.format templates.
WRK_DONE = """
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


def wrk_command(wrk: str, url: str, script: str, connections: int, duration: float) -> list[str]:
    threads = min(2, connections)
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s"]
    return [*command, "-s", script, url]


def run(command: list[str], server: str) -> Result:
    """Run a load generator that prints a LOADJSON line; its result."""
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return parse_result(server, output)


def parse_result(server: str, output: str) -> Result:
    line = next(line for line in output.splitlines() if line.startswith("LOADJSON "))
    data = json.loads(line.removeprefix("LOADJSON "))
    return Result(
        server,
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


def print_medians(results: dict[str, list[Result]]) -> dict[str, float]:
    """Print each server's median requests/s and latencies; return the medians of req/s."""
    rates = {}
    for name, runs in results.items():
        rps = median([r.rps for r in runs])
        p50, p95 = median([r.p50_ms for r in runs]), median([r.p95_ms for r in runs])
        print(f"{name:<12} {rps:9.1f} req/s  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
        rates[name] = rps
    return rates
