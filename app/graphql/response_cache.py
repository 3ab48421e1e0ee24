"""Answers to the dashboards' repeated queries, kept until a write or the clock moves them.

Dashboards ask the same few queries again and again (``WalletOverview`` on every page
load, poll and tab), and between two writes to an organization the answer cannot
differ. An answer is kept when its document is admitted (``prepared.py``), every field it
selects is one of ``CACHEABLE``, and it has no errors. It is keyed by the query text, the
operation, the variables, the caller (its whole ``Principal``: role, subject, key) and
the response's media type, and served again while both hold:

- The organization's change count (``app.changes``) is what it was before the answer
  was read. Every write committed since, by this instance or announced by another over
  the Redis bus, moves the count, so no write is ever missed in one process.
- The clock is before the answer's expiry: ``graphql_cache_seconds`` at most (the bound
  on writes nobody announces, such as the CLI's on an SQLite file a server also holds),
  sooner where a field's value moves with time alone (``Context.changes_at``: the month
  turning, a purchase leaving the 28-day window).

Fields not in ``CACHEABLE`` are never cached, so a field added later is safe until
someone has checked what its value depends on: the write counts, and the clock where
``changes_at`` says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)
from graphql.language.visitor import BREAK

from app.auth import Principal

ALL: Final = frozenset({"*"})
# The fields an answer may hold: by type, their names (ALL: every field of the type).
# Each depends only on rows that writes change, or on the clock through ``changes_at``.
CACHEABLE: dict[str, frozenset[str]] = {
    "Query": frozenset({"viewer"}),
    "Viewer": ALL,
    "Organization": frozenset(
        {
            "id",
            "slug",
            "name",
            "wallet",
            "subscription",
            "autoReload",
            "autoScale",
            "spendCap",
            "entitlement",
        }
    ),
    "Wallet": frozenset({"id", "balance", "held", "available", "purchasedLast28Days", "lots"}),
    "CreditLotConnection": ALL,
    "CreditLotEdge": ALL,
    "CreditLot": ALL,
    "PageInfo": ALL,
    "Amount": ALL,
    "PlanSubscription": ALL,
    "Plan": ALL,
    "Price": ALL,
    "AutoReload": ALL,
    "AutoScale": ALL,
    "SpendCap": ALL,
    "Entitlement": ALL,
    "NextTier": ALL,
}


def cacheable(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """Every field ``document`` selects, in every operation and fragment, is cacheable."""
    info = TypeInfo(schema)
    check = _Check(info)
    visit(document, TypeInfoVisitor(info, check))
    return check.ok


class _Check(Visitor):
    def __init__(self, info: TypeInfo) -> None:
        super().__init__()
        self.info = info
        self.ok = True

    def enter_field(self, node: FieldNode, *_args: object) -> object:
        name = node.name.value
        if name == "__typename":
            return None
        parent = self.info.get_parent_type()
        fields = CACHEABLE.get(parent.name) if parent is not None else None
        if fields is None or (fields is not ALL and name not in fields):
            self.ok = False
            return BREAK
        return None


# The query text, the operation, the variables (JSON, keys sorted), the caller, the
# response's media type.
Key = tuple[str, str | None, bytes, Principal, str]


@dataclass(frozen=True, slots=True)
class Answer:
    version: tuple[int, int]  # the organization's change count before it was read
    expires: datetime
    body: bytes  # the whole response, served as it is with status 200


def _size(answer: Answer) -> int:
    return len(answer.body)


class ResponseCache:
    """Answers kept ``keep_for`` at most, their bodies ``size`` bytes at most (the least
    recently used go first), and the answers being read now: requests for one of those
    wait for it rather than read it again (when an answer goes stale under many
    clients, one of them reads it)."""

    def __init__(self, size: int, keep_for: timedelta) -> None:
        self.keep_for = keep_for
        self._answers: LRUCache[Key, Answer] = LRUCache(size, getsizeof=_size)
        self._reading: dict[Key, tuple[tuple[int, int], asyncio.Future[bytes | None]]] = {}

    def get(self, key: Key, version: tuple[int, int], now: datetime) -> bytes | None:
        """The body kept for ``key``, if it was read at ``version`` and has not expired."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        if answer.version != version or now >= answer.expires:
            del self._answers[key]
            return None
        return answer.body

    def reading(self, key: Key, version: tuple[int, int]) -> asyncio.Future[bytes | None] | None:
        """The body being read for ``key`` at ``version`` (None when it turns out not to
        be kept: errors, say); None when no such read is under way."""
        reading = self._reading.get(key)
        return reading[1] if reading is not None and reading[0] == version else None

    @contextmanager
    def read(self, key: Key, version: tuple[int, int]) -> Iterator[Callable[[Answer], None]]:
        """Marks ``key`` as being read at ``version`` for ``reading``, until the block
        ends; the function it gives keeps the answer read."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        registered = key not in self._reading
        if registered:
            self._reading[key] = (version, future)

        def keep(answer: Answer) -> None:
            if _size(answer) <= self._answers.maxsize:  # else more than the whole cache
                self._answers[key] = answer
            future.set_result(answer.body)

        try:
            yield keep
        finally:
            if registered:
                del self._reading[key]
            if not future.done():  # nothing kept: the waiters read it themselves
                future.set_result(None)
