"""The ledger writer runs its SQLite transactions on the event loop: when another process
holds the write lock it waits for it off the loop, and the server keeps answering; the
WAL is checkpointed off the loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from app.db import _SQLiteWriter
from app.settings import Settings
from tests.conftest import Harness, usage_event


class LockHolder(threading.Thread):
    """Another process's writer: holds SQLite's write lock until told to commit, or for
    ``at_most`` seconds."""

    def __init__(self, path: str, at_most: float) -> None:
        super().__init__(daemon=True)
        self.path, self.at_most = path, at_most
        self.locked, self.release = threading.Event(), threading.Event()
        self.holding = False

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        self.holding = True
        self.locked.set()
        self.release.wait(self.at_most)
        self.holding = False
        conn.execute("COMMIT")
        conn.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_write_waits_for_another_process_without_stopping_the_server(
    harness: Harness, settings: Settings
) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    holder = LockHolder(settings.database_url.removeprefix("sqlite+aiosqlite:///"), 5)
    holder.start()
    await asyncio.to_thread(holder.locked.wait)
    billing = asyncio.create_task(harness.usage(org, usage_event(key.id, "while-locked")))
    await asyncio.sleep(0.2)
    assert not billing.done()  # it waits for the lock
    assert (await harness.http.get("/healthz")).status_code == 200
    # Answered while the lock was still held: the loop did not wait in BEGIN (had it,
    # nothing would answer until the holder gave up after 5 s).
    assert holder.holding
    holder.release.set()
    (result,) = await billing
    assert result["outcome"] == "billed"
    assert await harness.books() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_writes_reach_the_database_file_not_only_the_wal(
    harness: Harness, settings: Settings
) -> None:
    """The writer's connection does not checkpoint (it runs on the event loop); its
    thread does, every ``CHECKPOINT_EVERY`` commits, so the WAL does not grow for ever."""
    path = Path(settings.database_url.removeprefix("sqlite+aiosqlite:///"))
    org = await harness.org(grant_usd="100")
    key = await harness.key(org)
    before = await asyncio.to_thread(os.path.getsize, path)
    for n in range(_SQLiteWriter.CHECKPOINT_EVERY + 10):  # a commit each
        await harness.usage(org, usage_event(key.id, f"r{n}"))
    await asyncio.sleep(0.5)  # the checkpoint runs in the writer's thread
    assert await asyncio.to_thread(os.path.getsize, path) > before
