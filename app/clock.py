"""The time source. Everything that reads "now" takes a Clock, so tests can move it; work
due at a time (a webhook's retry) is scheduled on it too, so moving it runs that work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` on the running loop once the clock reads ``when``."""
        delay = max((when - self.now()).total_seconds(), 0.0)
        return asyncio.get_running_loop().call_later(delay, callback)


class _FrozenTimer:
    def __init__(self, when: datetime, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FrozenClock(Clock):
    """A clock that moves only when told to: for tests and simulations. What is scheduled
    on it runs when ``advance`` reaches its time, in time order."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self._timers: list[_FrozenTimer] = []

    def now(self) -> datetime:
        return self.at

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Timer:
        timer = _FrozenTimer(when, callback)
        self._timers.append(timer)
        if when <= self.at:
            self.advance(timedelta(0))
        return timer

    def advance(self, delta: timedelta) -> None:
        self.at += delta
        due = sorted((t for t in self._timers if t.when <= self.at), key=lambda t: t.when)
        self._timers = [t for t in self._timers if t.when > self.at]
        for timer in due:
            if not timer.cancelled:
                timer.callback()
