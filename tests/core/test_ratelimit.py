"""The per-caller token bucket: bursts, the steady rate, and the wait it reports."""

from __future__ import annotations

import pytest

from app.ratelimit import RateLimiter, retry_after


def test_a_burst_then_the_steady_rate() -> None:
    limiter = RateLimiter(per_second=2.0, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 0.0) == pytest.approx(0.5)
    assert limiter.take("a", 0.25) == pytest.approx(0.25)  # half a token back, half to go
    assert limiter.take("a", 0.5) == 0.0
    assert limiter.take("a", 0.5) > 0


def test_callers_have_their_own_buckets_and_idle_ones_refill() -> None:
    limiter = RateLimiter(per_second=1.0, burst=1)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0
    assert limiter.take("a", 10.0) == 0.0
    assert limiter.take("a", 10.0) > 0  # refilled to the burst, never past it


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(1.2) == "2"
