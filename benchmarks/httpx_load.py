"""Fallback load generator (when ``wrk`` is missing): asyncio + httpx in its own process.

Prints one line ``LOADJSON {...}`` with the same fields as the wrk script's summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def client(
    http: httpx.AsyncClient, args: argparse.Namespace, worker: int, deadline: float, out: list[int]
) -> int:
    errors = 0
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        event = {
            "request_id": f"{args.tag}-{worker}-{n}",
            "api_key_id": args.api_key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "status": "succeeded",
        }
        started = time.perf_counter()
        response = await http.post("/api/v1/usage", json={"events": [event]})
        out.append(int((time.perf_counter() - started) * 1_000_000))
        if response.status_code >= 300:
            errors += 1
    return errors


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--api-key-id", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    limits = httpx.Limits(max_connections=args.connections)
    headers = {"Authorization": f"Bearer {args.token}"}
    latencies: list[int] = []
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, limits=limits, timeout=30
    ) as http:
        started = time.perf_counter()
        deadline = started + args.duration
        errors = await asyncio.gather(
            *(client(http, args, i, deadline, latencies) for i in range(args.connections))
        )
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    summary = {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1_000_000),
        "p50_us": pct(50),
        "p95_us": pct(95),
        "p99_us": pct(99),
        "status_errors": sum(errors),
        "socket_errors": 0,
    }
    print("LOADJSON " + json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
