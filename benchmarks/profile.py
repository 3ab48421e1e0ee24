"""Where one request's time goes: py-spy on ``creditgraph serve`` under a benchmark's load.

Starts the server as the benchmarks do (``load.py``), drives one load with wrk (a
gateway call of ``gateway.py`` or a dashboard operation of ``dashboards.py``), and
samples the server with py-spy meanwhile: only the thread holding the interpreter
lock (``--gil``), so the samples are the Python (and the C it calls) that requests
wait on. Prints the share of each layer (uvicorn and Starlette, Strawberry and
graphql-core, SQLAlchemy, the writer's transaction, rollups, alerts, events, logging,
...) by the innermost frame of a known layer, then the top functions by own and by
cumulative samples, and keeps py-spy's raw output beside (flamegraph.pl draws it).

    pip install py-spy && apt-get install -y wrk
    .venv/bin/python -m benchmarks.profile usage
    .venv/bin/python -m benchmarks.profile "Usage model" --size 1000000 --workdir /tmp/cg-dash
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import dashboards, gateway
from benchmarks.common import env_for, prepare
from benchmarks.load import machine, print_changed, serve_creditgraph, wrk

# Layers by where their code lives, the most specific first.
LAYERS = [
    ("app/ledger/writer.py", "writer: batching"),
    ("app/ledger/", "writer: the transaction (ledger)"),
    ("app/usage/rollups.py", "writer: rollups"),
    ("app/usage/ingest.py", "writer: usage jobs"),
    ("app/gateway/", "writer: authorize jobs"),
    ("app/keys/caps.py", "writer: caps"),
    ("app/db.py", "creditgraph: database"),
    ("app/alerts/", "alerts"),
    ("app/events", "events"),
    ("app/metrics.py", "metrics"),
    ("prometheus_client/", "metrics"),
    ("app/logs.py", "logging"),
    ("logging/", "logging"),
    ("app/graphql/executor.py", "creditgraph: GraphQL executor"),
    ("app/graphql/", "creditgraph: GraphQL resolvers"),
    ("app/api/", "creditgraph: REST handlers"),
    ("app/", "creditgraph: other"),
    ("strawberry/", "Strawberry"),
    ("graphql/", "graphql-core"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("aiosqlite/", "SQLAlchemy"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("httptools", "uvicorn"),
    ("orjson", "JSON"),
    ("jwt/", "auth (JWT)"),
    ("asyncio/", "asyncio"),
    ("concurrent/", "threads"),
    ("threading.py", "threads"),
]
FRAME = re.compile(r"^(?P<function>.+) \((?P<file>[^()]+?)(?::\d+)?\)$")


def layer(file: str) -> str | None:
    for marker, name in LAYERS:
        if marker in file:
            return name
    return None


def summarize(raw: Path, top: int) -> str:
    """The layer table and the top functions of py-spy's raw (collapsed) output."""
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [m for m in map(FRAME.match, stack.split(";")[1:]) if m is not None]
        total += samples
        names = [f"{m['function']} ({m['file']})" for m in frames]
        known = [name for m in frames if (name := layer(m["file"])) is not None]
        layers[known[-1] if known else "other"] += samples
        if names:
            own[names[-1]] += samples
        for name in set(names):
            cumulative[name] += samples
    lines = [f"{total} samples holding the GIL", "", "| layer | share |", "|---|---|"]
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in layers.most_common()]
    # Cumulative: creditgraph's own functions only (every stack starts in uvicorn's).
    ours = collections.Counter({name: n for name, n in cumulative.items() if "(app/" in name})
    for title, counter in (("own", own), ("cumulative, creditgraph's", ours)):
        lines += ["", f"| function ({title}) | share |", "|---|---|"]
        lines += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    loads = list(gateway.LOADS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("load", help=f"one of {', '.join(loads)}, or a dashboards operation")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampled")
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--size", type=int, default=10_000, help="usage records (dashboards)")
    parser.add_argument("--cache", action="store_true", help="dashboards: the cache on")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--tree", type=Path, help="serve creditgraph from this source tree")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("profiling needs py-spy: .venv/bin/pip install py-spy")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditgraph-profile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine())
    print_changed()

    if args.load in loads:
        db = workdir / "profile-gateway.db"
        for stale in workdir.glob("profile-gateway.db*"):
            stale.unlink()
        fixture = asyncio.run(prepare(db))
        env = env_for(db)
        text = gateway.script(args.load, fixture)
    else:
        db = workdir / f"dashboards-{args.size}.db"
        loaded = (
            dashboards.reopen(db)
            if db.exists()
            else asyncio.run(dashboards.populate(db, args.size, datetime.now(UTC)))
        )
        request = dashboards.operations(loaded)[args.load]
        token = dashboards.viewer_token()
        env = env_for(db)
        if not args.cache:
            env["CREDITGRAPH_GRAPHQL_CACHE_SECONDS"] = "0"
        text = dashboards.script(request, token)
    server = serve_creditgraph("creditgraph", env, workdir, tree=args.tree)
    raw = workdir / (re.sub(r"\W+", "-", args.load) + ".raw")
    try:
        wrk(server, text, connections=args.connections, duration=2)  # warm-up
        results = []
        driving = threading.Thread(
            target=lambda: results.append(
                wrk(server, text, connections=args.connections, duration=args.seconds + 2)
            )
        )
        driving.start()
        record = [py_spy, "record", "--pid", str(server.process.pid), "--gil", "--nonblocking"]
        record += ["--rate", "250", "--duration", str(int(args.seconds))]
        subprocess.run([*record, "--format", "raw", "--output", str(raw)], check=True)
        driving.join()
    finally:
        server.stop()
    print(f"\n{args.load}: {results[0].rps:.0f} req/s while sampled; raw samples in {raw}\n")
    print(summarize(raw, args.top))


if __name__ == "__main__":
    main()
