"""The demo's live traffic: a simulated gateway calling the running server as a real one
does, over HTTP: ``POST /api/v1/authorize`` with a demo key, then ``POST /api/v1/usage``
with the service token, at random times (a Poisson stream at ``rate`` calls a second).

It runs while uvicorn serves (``app.cli``'s server runs it): it starts once the socket
listens and stops before the server's shutdown begins, letting its calls in flight
finish, so none is cut off half way. Refusals (caps, an empty wallet) are what a gateway
sees and are not errors; it logs only answers that are the server's fault.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any

import httpx

from app.demo import Call, draw

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32  # past this the server is slower than the rate: calls are skipped
# After a stall (a slow commit, a suspended laptop) the stream resumes about where it is
# rather than sending every call it missed at once.
MOST_BEHIND = 1.0


def next_due(due: float, gap: float, now: float) -> float:
    """When the next call is due, on the event loop's clock: ``gap`` after the last one
    was due, but at most ``MOST_BEHIND`` seconds' worth of calls late."""
    return max(due, now - MOST_BEHIND) + gap


class Traffic:
    # Its requests carry this User-Agent, which the demo's access log leaves out
    # (``AccessLog.unlogged_agent``): four lines a second would bury the printout.
    USER_AGENT = "creditgraph-demo-traffic"

    def __init__(self, keys: dict[str, str], service_token: str, rate: float) -> None:
        """``keys``: the demo keys' secrets by name (``app.demo.KEY_NAMES``)."""
        self.keys = keys
        self.rate = rate
        self._usage_headers = {"Authorization": f"Bearer {service_token}"}
        self._rng = random.Random()

    async def run(self, base_url: str) -> None:
        """Call ``base_url`` until cancelled; then wait for the calls in flight."""
        loop = asyncio.get_running_loop()
        in_flight: set[asyncio.Task[None]] = set()
        headers = {"User-Agent": self.USER_AGENT}
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=30, trust_env=False
        ) as client:
            try:
                due = loop.time()
                while True:
                    # Exponential gaps: the calls of a Poisson stream at ``rate`` a second.
                    due = next_due(due, self._rng.expovariate(self.rate), loop.time())
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    call = draw(self._rng)
                    if call.key not in self.keys or len(in_flight) >= MAX_IN_FLIGHT:
                        continue  # a demo key revoked in the console; or the server lags
                    task = asyncio.create_task(self._call(client, call))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            finally:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _call(self, client: httpx.AsyncClient, call: Call) -> None:
        request_id = f"demo-live-{uuid.uuid4().hex}"
        prompt, completion = call.most_tokens
        try:
            answer = await client.post(
                "/api/v1/authorize",
                json={
                    "api_key": self.keys[call.key],
                    "model": call.model,
                    "request_id": request_id,
                    "max_prompt_tokens": prompt,
                    "max_completion_tokens": completion,
                },
            )
            if not _answered(answer):
                return  # refused: a cap, the wallet; the gateway would not make the call
            event: dict[str, Any] = {
                "request_id": request_id,
                "api_key_id": answer.json()["api_key_id"],
                "model": call.model,
                "prompt_tokens": call.prompt_tokens,
                "completion_tokens": call.completion_tokens,
                # The provider failed the call: recorded, not billed, the hold released.
                "status": "failed" if call.failed else "succeeded",
                "tags": call.tags,
            }
            _answered(
                await client.post(
                    "/api/v1/usage", json={"events": [event]}, headers=self._usage_headers
                )
            )
        except httpx.TransportError:
            pass  # the server is overloaded or going away: the next call tries again


def _answered(response: httpx.Response) -> bool:
    """True for a 2xx; a 5xx is the server's fault and logged, other refusals are not."""
    if response.status_code >= 500:
        log.warning("demo traffic: %s answered %d", response.url.path, response.status_code)
    return response.is_success
