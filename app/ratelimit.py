"""A token bucket per caller: a steady rate with room for bursts, per process.

The limit protects the service from one caller's flood; it is not a billing rule (the
money caps are exact and live in ``keys.caps``). With several instances each keeps its
own buckets, so a caller's effective limit is the per-instance one times the instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    # Buckets idle this long are full again and are forgotten, which bounds memory.
    IDLE_SECONDS = 600.0

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._swept_at = 0.0

    def take(self, caller: str, now: float) -> float:
        """Spend one request of ``caller``'s; 0 when allowed, else seconds to wait."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            self._sweep(now)
            return 0.0
        return (1 - bucket.tokens) / self.per_second

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < self.IDLE_SECONDS:
            return
        self._swept_at = now
        idle = [key for key, b in self._buckets.items() if now - b.at > self.IDLE_SECONDS]
        for key in idle:
            del self._buckets[key]


def retry_after(seconds: float) -> str:
    """The Retry-After header's whole seconds, never 0 for a refusal."""
    return str(max(1, math.ceil(seconds)))
