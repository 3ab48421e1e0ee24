"""Load-test plumbing shared by the HTTP benchmarks: servers started as users start them,
wrk, results and medians.

creditgraph is started with ``creditgraph serve`` (its default host, log level and
access log, the periodic jobs on) and the CREDITGRAPH_* environment the README
documents: a database URL, a state directory and a JWT secret. What a benchmark must
change beyond that is listed in ``CHANGED`` and printed with every run. The baseline
is a bare Starlette app (``benchmarks/bare_app.py``) under uvicorn without access
logging: the least a Python server of this stack can do per request.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import ROOT, median

# Settings the HTTP benchmarks change from the defaults, and why; printed with every run.
CHANGED = {
    # One token drives all the load; the default 100 requests/s per caller would 429.
    "CREDITGRAPH_GRAPHQL_RATE_PER_SECOND": "1000000",
    "CREDITGRAPH_GRAPHQL_BURST": "1000000",
}

# Appended to every wrk script: prints one LOADJSON line the benchmarks parse.
WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,'
    .. '"status_errors":%d,"socket_errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""

# The wrk load of the measurements: one thread, 32 connections, 6 seconds.
CONNECTIONS, DURATION = 32, 6.0


def wrk_path() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("the HTTP benchmarks need wrk: apt-get install -y wrk")
    return wrk


def lua_string(value: str) -> str:
    """``value`` as a Lua long-bracket string literal (no escapes inside)."""
    level = "="
    while f"]{level}]" in value:
        level += "="
    return f"[{level}[{value}]{level}]"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process under load: its name in the results, port and log file."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_healthy(server: Server) -> Server:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.process.poll() is not None:
            sys.exit(f"{server.name} exited with {server.process.returncode}; see {server.log}")
        time.sleep(0.2)
    server.stop()
    sys.exit(f"{server.name} did not come up on port {server.port}; see {server.log}")


def _spawn(name: str, command: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> Server:
    port = int(command[command.index("--port") + 1])
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=out, stderr=out)
    return _wait_healthy(Server(name, port, process, log))


def serve_creditgraph(
    name: str, env: Mapping[str, str], workdir: Path, *, tree: Path | None = None
) -> Server:
    """``creditgraph serve --port P`` with ``env`` and ``CHANGED``; from the source tree
    ``tree`` instead of this checkout when given (a baseline commit, in the same venv)."""
    port = str(free_port())
    env = {**env, **CHANGED}
    if tree is None:
        command = [str(Path(sys.executable).parent / "creditgraph"), "serve", "--port", port]
    else:  # what the ``creditgraph`` script runs, with that tree's ``app`` first on the path
        env["PYTHONPATH"] = str(tree)
        entry = "import sys; from app.cli import main; sys.argv[0] = 'creditgraph'; main()"
        command = [sys.executable, "-c", entry, "serve", "--port", port]
    return _spawn(name, command, env, tree or ROOT, workdir / f"{name}.log")


def serve_bare(env: Mapping[str, str], workdir: Path, name: str = "bare") -> Server:
    port = str(free_port())
    command = [sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port", port]
    command += ["--no-access-log"]
    return _spawn(name, command, env, ROOT, workdir / f"{name}.log")


@dataclass(frozen=True)
class Result:
    server: str
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    cpu_seconds: float  # the server's, during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / max(self.requests, 1)


def wrk(
    server: Server, script: str, *, connections: int = CONNECTIONS, duration: float = DURATION
) -> Result:
    """Drive ``server`` with the wrk Lua ``script`` (``WRK_DONE`` is appended)."""
    path = server.log.with_name(f"{server.name}-{time.monotonic_ns()}.lua")
    path.write_text(script + WRK_DONE)
    command = [wrk_path(), "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s"]
    command += ["-s", str(path), server.url]
    cpu = server.cpu_seconds()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - cpu
    path.unlink()
    line = next(line for line in output.splitlines() if line.startswith("LOADJSON "))
    data = json.loads(line.removeprefix("LOADJSON "))
    return Result(
        server.name,
        data["requests"],
        data["duration_us"] / 1e6,
        data["p50_us"] / 1000,
        data["p95_us"] / 1000,
        data["p99_us"] / 1000,
        data["status_errors"] + data["socket_errors"],
        cpu,
    )


def describe(result: Result) -> str:
    return (
        f"{result.server:<14} {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f}  "
        f"p95 {result.p95_ms:7.2f}  p99 {result.p99_ms:7.2f} ms  "
        f"cpu {result.cpu_us_per_request:6.0f} us/req  "
        f"({result.requests} requests, {result.errors} errors)"
    )


@dataclass
class Medians:
    """The medians of one server's runs."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_us: float
    errors: int = 0
    runs: list[Result] = field(default_factory=list)


def medians(runs: list[Result]) -> Medians:
    return Medians(
        median([r.rps for r in runs]),
        median([r.p50_ms for r in runs]),
        median([r.p95_ms for r in runs]),
        median([r.p99_ms for r in runs]),
        median([r.cpu_us_per_request for r in runs]),
        sum(r.errors for r in runs),
        runs,
    )


def alternate(
    servers: Iterable[Server], drive: Callable[[Server], Result], rounds: int
) -> dict[str, Medians]:
    """``drive`` each server in turn, ``rounds`` times (a, b, a, b, ...), printing each run;
    the medians per server."""
    servers = list(servers)
    runs: dict[str, list[Result]] = {server.name: [] for server in servers}
    for _ in range(rounds):
        for server in servers:
            result = drive(server)
            runs[server.name].append(result)
            print("    " + describe(result), flush=True)
    return {name: medians(results) for name, results in runs.items()}


def print_changed() -> None:
    changed = ", ".join(f"{name}={value}" for name, value in CHANGED.items())
    print(f"creditgraph: `creditgraph serve` with default settings except {changed}")
    print("  (one token drives all the load; the default per-caller GraphQL limit would 429)")


def machine() -> str:
    load = os.getloadavg()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"commit {commit}{' (modified)' if dirty else ''}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
