"""The group-commit writer: every change to money goes through here.

Requests hand jobs to one task, which takes everything queued (up to a bound), loads
what those jobs need in a few queries, applies them one after another on that state,
writes the result in bulk and commits once. Jobs check and change state in the same
synchronous step, so of N concurrent holds that together exceed what is available,
exactly as many succeed as fit; a refusal is a job's result, not an exception, so it
never disturbs its neighbours. Events are published after the commit, never before.

Should a batch fail as a whole (a constraint raced by another instance, a driver
error), it is rolled back and each submission is retried alone, so one bad job cannot
fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from app.clock import Clock
from app.db import Database
from app.events import BalanceChanged, Event, EventBus
from app.ledger.book import Book
from app.ledger.state import Needs, load_state

log = logging.getLogger(__name__)


class Job(Protocol):
    """One unit of work: it says what it reads, then applies itself to loaded state."""

    def needs(self, needs: Needs) -> None: ...

    def apply(self, book: Book) -> Any: ...


@dataclass(slots=True)
class _Submission:
    jobs: Sequence[Job]
    future: asyncio.Future[list[Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WriterClosed(RuntimeError):
    """The process is shutting down and takes no more writes."""


class Writer:
    def __init__(self, db: Database, bus: EventBus, clock: Clock, max_batch: int) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Told, after each commit, which organizations' balances fell under their
        # auto-reload threshold (``app.payments``).
        self.on_low_balance: Callable[[set[int]], None] | None = None
        # Told, after each commit, which organizations' balances changed (``app.alerts``).
        self.on_balance_changed: Callable[[set[int]], None] | None = None
        # Told, after each commit, how many jobs it took and what it published (``app.metrics``).
        self.on_committed: Callable[[int, list[Event]], None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="creditgraph-writer")

    @property
    def running(self) -> bool:
        """Taking writes: started, not stopping, its task alive."""
        return self._task is not None and not self._task.done() and not self._closed

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        self._closed = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    async def submit(self, jobs: Sequence[Job]) -> list[Any]:
        """Apply ``jobs`` in order within one transaction; their results, in order."""
        if self._closed:
            raise WriterClosed("shutting down")
        if not jobs:
            return []
        submission = _Submission(jobs)
        await self._queue.put(submission)
        return await submission.future

    async def run(self, job: Job) -> Any:
        (result,) = await self.submit([job])
        return result

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, size, stopping = [first], len(first.jobs), False
            while size < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stopping = True
                    break
                batch.append(more)
                size += len(more.jobs)
            await self._commit_batch(batch)
            if stopping:
                return

    async def _commit_batch(self, batch: list[_Submission]) -> None:
        try:
            results = await self._transaction([job for s in batch for job in s.jobs])
        except Exception:
            if len(batch) == 1:
                log.exception("write failed")
                batch[0].future.set_exception(RuntimeError("the write failed"))
                return
            log.warning("batch of %d failed; retrying each submission alone", len(batch))
            for submission in batch:
                await self._commit_batch([submission])
            return
        offset = 0
        for submission in batch:
            n = len(submission.jobs)
            if not submission.future.cancelled():
                submission.future.set_result(results[offset : offset + n])
            offset += n

    async def _transaction(self, jobs: list[Job]) -> list[Any]:
        needs = Needs()
        for job in jobs:
            job.needs(needs)
        now = self._clock.now()

        def work(conn: Connection) -> tuple[list[Any], list[Event], set[int]]:
            state = load_state(conn, needs, now)
            # Another writer (an instance, the CLI) may have committed to these rows,
            # stamped later than ``now``, while this one waited for their locks. Stamped
            # with a time read once the locks are held, each key's spend marks and each
            # wallet's entries stay in time order; marks are per second, so only a new
            # second needs the state loaded again (under the locks already held: quick).
            locked_at = self._clock.now()
            if int(locked_at.timestamp()) != int(now.timestamp()):
                state = load_state(conn, needs, locked_at)
            book = Book(state)
            results = [job.apply(book) for job in jobs]
            book.flush(conn)
            return results, book.events, book.low_balance

        # Every organization whose rows the batch may have changed (loading the state
        # adds those of the holds it closes).
        results, events, low_balance = await self._db.transaction(work, lambda: needs.orgs)
        if self.on_committed is not None:
            self.on_committed(len(jobs), events)
        if events:
            await self._bus.publish(events)  # which other instances count as changes too
        silent = needs.orgs.difference(event.organization_id for event in events)
        if silent and self._db.changes.announce is not None:
            await self._db.changes.announce(silent)
        if low_balance and self.on_low_balance is not None:
            self.on_low_balance(low_balance)
        if events and self.on_balance_changed is not None:
            changed = {e.organization_id for e in events if isinstance(e, BalanceChanged)}
            if changed:
                self.on_balance_changed(changed)
        return results
